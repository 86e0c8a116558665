import type { Queued } from './lease-queue';

/**
 * Where a lease is, and what has happened to it, in one small integer: an open lease is kept
 * per connection out, so every field counts (see `npm run soak`, bytes per open lease).
 */
const enum Flag {
  /** The two lowest bits: waiting, held or ended. */
  StateMask = 0b11,
  Waiting = 0,
  Held = 1,
  Ended = 2,
  LeakReported = 1 << 2,
  Destroyed = 1 << 3,
  EndedByShutdown = 1 << 4,
  /** `pool.wait_ms` and the `pool.acquired` event are on the span (see `Lease.writeDeferredEvents`). */
  GrantRecorded = 1 << 5,
  /** The checkout span was started not recording: it is a span context and nothing more. */
  SpanNotRecording = 1 << 6,
}

/**
 * The states of a lease (waiting → held → ended, or waiting → ended) and the marks it collects
 * on the way. Each transition answers whether it happened, so a late or repeated call from an
 * adapter is a no-op without a second check.
 */
export abstract class LeaseLifecycle implements Queued {
  private flags: number = Flag.Waiting;
  /** The pool queue (waiting or held) the lease is in, and its neighbours there (see `lease-queue.ts`). */
  queuedIn: object | undefined = undefined;
  queuePrev: Queued | undefined = undefined;
  queueNext: Queued | undefined = undefined;

  private get state(): number {
    return this.flags & Flag.StateMask;
  }

  private has(flag: Flag): boolean {
    return (this.flags & flag) !== 0;
  }

  /** True from the request until checkin, destruction or failure. */
  get isOpen(): boolean {
    return this.state !== Flag.Ended;
  }

  /** True while the connection is granted and not yet checked in. */
  get isHeld(): boolean {
    return this.state === Flag.Held;
  }

  /** True from the request until the grant or the failure. */
  get isWaiting(): boolean {
    return this.state === Flag.Waiting;
  }

  /** True when the tracer provider's shutdown ended the lease while the connection was out. */
  get endedAtProviderShutdown(): boolean {
    return this.has(Flag.EndedByShutdown);
  }

  /** True once the lease was reported as a suspected leak. */
  get leakSuspected(): boolean {
    return this.has(Flag.LeakReported);
  }

  /** True once the connection was checked in with a request to destroy it. */
  get endedByDestroy(): boolean {
    return this.has(Flag.Destroyed);
  }

  /** Waiting → held; false if the lease was not waiting. */
  protected becomeHeld(): boolean {
    if (this.state !== Flag.Waiting) return false;
    this.flags = (this.flags & ~Flag.StateMask) | Flag.Held;
    return true;
  }

  /** Any open state → ended; false if it had ended already. */
  protected becomeEnded(): boolean {
    if (this.state === Flag.Ended) return false;
    this.flags = (this.flags & ~Flag.StateMask) | Flag.Ended;
    return true;
  }

  /** Marks a held lease as reported; false if it is not held or was reported before. */
  protected markLeakReported(): boolean {
    if (this.state !== Flag.Held || this.has(Flag.LeakReported)) return false;
    this.flags |= Flag.LeakReported;
    return true;
  }

  /** The checkout span was started not recording (checked once, while it could still record). */
  protected markSpanNotRecording(): void {
    this.flags |= Flag.SpanNotRecording;
  }

  protected get spanNeverRecorded(): boolean {
    return this.has(Flag.SpanNotRecording);
  }

  protected markDestroyed(): void {
    this.flags |= Flag.Destroyed;
  }

  protected markEndedByShutdown(): void {
    this.flags |= Flag.EndedByShutdown;
  }

  /** True the first time only: the grant's event and wait time are to be written now. */
  protected takeGrantRecording(): boolean {
    if (this.has(Flag.GrantRecorded)) return false;
    this.flags |= Flag.GrantRecorded;
    return true;
  }
}
