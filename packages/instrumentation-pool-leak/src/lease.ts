import { context, SpanStatusCode, type Context, type Span } from '@opentelemetry/api';
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';
import {
  ATTR_POOL_CHECKIN_DESTROYED,
  ATTR_POOL_HELD_MS,
  ATTR_POOL_RELEASE_REASON,
  ATTR_POOL_RELEASE_STACKTRACE,
  ATTR_POOL_WAIT_MS,
  EVENT_POOL_ACQUIRED,
  EVENT_POOL_RELEASE_INVALID,
} from './semconv';
import type { CapturedStack } from './stack';
import type { TrackedPool } from './tracked-pool';

/** Why a release was not a valid checkin. Values of `pool.release.reason`. */
export type InvalidReleaseReason = 'double_release' | 'destroyed' | 'foreign';

/** What a lease needs from the core that created it. */
export interface LeaseHost {
  /** Called exactly once, when the lease ends for any reason. */
  forget(lease: Lease): void;
  /** Records an invalid release whose lease span has already ended. */
  reportInvalidRelease(lease: Lease, reason: InvalidReleaseReason, stack: CapturedStack | undefined): void;
  captureStack(boundary: Function): CapturedStack | undefined;
  reportError(where: string, error: unknown): void;
}

const enum State {
  Waiting,
  Held,
  Ended,
}

/**
 * One checkout, from the request to the checkin: owns the checkout span and its timing.
 * Adapters call these methods at the library's acquire and release points; none of them throws.
 */
export class Lease {
  private state = State.Waiting;
  private readonly requestedAt = performance.now();
  private grantedAt = 0;

  constructor(
    private readonly host: LeaseHost,
    readonly pool: TrackedPool,
    readonly span: Span,
    /** The context active when the checkout was requested; callbacks run in it. */
    readonly callerContext: Context,
    readonly stack: CapturedStack | undefined,
  ) {}

  /** True from the request until checkin, destruction or failure. */
  get isOpen(): boolean {
    return this.state !== State.Ended;
  }

  /** True while the connection is granted and not yet checked in. */
  get isHeld(): boolean {
    return this.state === State.Held;
  }

  /** Milliseconds since the grant, or 0 if not granted. */
  heldMs(now = performance.now()): number {
    return this.state === State.Held ? now - this.grantedAt : 0;
  }

  /** The pool granted a connection to this checkout. */
  granted(): void {
    if (this.state !== State.Waiting) return;
    try {
      this.state = State.Held;
      this.grantedAt = performance.now();
      this.span.setAttribute(ATTR_POOL_WAIT_MS, this.grantedAt - this.requestedAt);
      this.span.addEvent(EVENT_POOL_ACQUIRED);
    } catch (error) {
      this.host.reportError('granted', error);
    }
  }

  /** The connection went back to the pool; `destroyed` when the release asked to discard it. */
  checkin(destroyed = false): void {
    if (this.state !== State.Held) return;
    try {
      const heldMs = performance.now() - this.grantedAt;
      this.span.setAttribute(ATTR_POOL_HELD_MS, heldMs);
      if (destroyed) this.span.setAttribute(ATTR_POOL_CHECKIN_DESTROYED, true);
      this.end();
    } catch (error) {
      this.host.reportError('checkin', error);
    }
  }

  /** The checkout failed (timeout, pool closed, connect error). */
  failed(error: unknown): void {
    if (this.state !== State.Waiting) return;
    try {
      endWithError(this.span, error);
    } catch (inner) {
      this.host.reportError('failed', inner);
    }
    this.finish();
  }

  /**
   * A release that the lease cannot accept (it already ended, or the connection was destroyed).
   * Recorded only: the adapter still calls the library, which keeps its own behaviour.
   */
  invalidRelease(reason: InvalidReleaseReason, boundary: Function): void {
    try {
      const stack = this.host.captureStack(boundary);
      if (this.span.isRecording()) {
        this.span.addEvent(EVENT_POOL_RELEASE_INVALID, invalidReleaseAttributes(reason, stack));
      } else {
        this.host.reportInvalidRelease(this, reason, stack);
      }
    } catch (error) {
      this.host.reportError('invalidRelease', error);
    }
  }

  /** Ends a still-open lease because the tracer provider shuts down, so it gets exported. */
  endAtShutdown(): void {
    if (this.state === State.Ended) return;
    try {
      if (this.state === State.Held) this.span.setAttribute(ATTR_POOL_HELD_MS, performance.now() - this.grantedAt);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: 'lease still open at tracer provider shutdown' });
      this.span.end();
    } catch (error) {
      this.host.reportError('endAtShutdown', error);
    }
    this.finish();
  }

  /** Runs `fn` in the caller's context: pools that queue waiters lose it otherwise. */
  runInCallerContext<This, Args extends unknown[], Result>(
    fn: (this: This, ...args: Args) => Result,
    thisArg: This,
    args: Args,
  ): Result {
    return context.with(this.callerContext, fn, thisArg, ...args);
  }

  private end(): void {
    this.span.end();
    this.finish();
  }

  private finish(): void {
    if (this.state === State.Ended) return;
    this.state = State.Ended;
    this.host.forget(this);
  }
}

/** Attributes of a `pool.release.invalid` event. */
export function invalidReleaseAttributes(reason: InvalidReleaseReason, stack: CapturedStack | undefined) {
  return stack === undefined
    ? { [ATTR_POOL_RELEASE_REASON]: reason }
    : { [ATTR_POOL_RELEASE_REASON]: reason, [ATTR_POOL_RELEASE_STACKTRACE]: stack.text };
}

/** ERROR status, exception event and `error.type`, then end: the one way a failed span ends. */
export function endWithError(span: Span, error: unknown): void {
  if (error instanceof Error) {
    span.recordException(error);
    span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else {
    span.setAttribute(ATTR_ERROR_TYPE, '_OTHER');
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
  }
  span.end();
}

function errorType(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code !== '' ? code : error.name || '_OTHER';
}
