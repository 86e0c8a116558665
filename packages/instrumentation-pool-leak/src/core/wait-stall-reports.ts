import { SpanKind, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import type { SpanClock } from './span-clock';
import type { PoolMetrics } from '../signals/metrics';
import { EVENT_POOL_WAIT_STALLED } from '../signals/semconv';
import type { Lease, LeasePool } from './lease';
import { causeFor, starvationOf, starvedWaiterAttributes, type PoolStarvation } from './starvation';
import type { LeaseQueue } from './lease-queue';
import { NO_WAIT_WATCH, WaitStallSweeper, type WaitStallSweeperOptions, type WaitWatch } from './wait-stall';

/** What the stall reports need from the lease core. */
export interface WaitStallHost {
  readonly metrics: PoolMetrics;
  readonly clock: SpanClock;
  reportError(where: string, error: unknown): void;
}

/** The `pool.wait.stalled` event of a waiter whose checkout span has not started yet. */
interface StallEvent {
  readonly attributes: Attributes;
  readonly time: number;
}

/**
 * Stalled waiters (DESIGN.md, `pool.wait.stalled`): a checkout still waiting after the wait
 * threshold gets, once, a short `<library> wait.stalled` span (child of the caller's context,
 * ended at once, so it is exported while the checkout still waits), the `pool.wait.stalled`
 * counter, and the same event on its checkout span, written when that span starts (a queued
 * checkout starts it at its grant, failure or shutdown) at the time of the stall. Also the
 * attributes of a checkout that ends without ever being granted.
 */
export class WaitStalls {
  private watcher: WaitWatch = NO_WAIT_WATCH;
  private thresholdMs = 0;
  /** Waiters reported once: never twice, even across a threshold change. */
  private readonly reported = new WeakSet<Lease>();
  /** Events waiting for their checkout span to start. */
  private readonly events = new WeakMap<Lease, StallEvent>();
  private readonly perPool = (pool: LeasePool, now: number): PoolStarvation => starvationOf(pool, now);
  private readonly onStall = (lease: Lease, _waitedMs: number, starvation: PoolStarvation): void => {
    try {
      this.report(lease, starvation);
    } catch (error) {
      this.host.reportError('reportWaitStall', error);
    }
  };

  constructor(
    private readonly host: WaitStallHost,
    private readonly tracer: () => Tracer,
    /** The waiting queues of the pools with open leases, walked by the sweep. */
    private readonly waitingQueues: () => Iterable<LeaseQueue<Lease>>,
    thresholdMs: number,
    private readonly sweepOptions: WaitStallSweeperOptions = {},
  ) {
    this.configure(thresholdMs, false);
  }

  /** A checkout was requested: it waits in its pool's waiting queue until its grant or end. */
  watch(): void {
    this.watcher.watch();
  }

  /**
   * A new wait threshold (0 = off). The running sweeper is re-timed; a new one goes on from where
   * the queues were last swept, so checkouts still waiting and not yet reported are reported when
   * due (when `watching`: the instrumentation is not stopped).
   */
  configure(thresholdMs: number, watching = true): void {
    if (thresholdMs === this.thresholdMs) return;
    this.thresholdMs = thresholdMs;
    if (this.watcher instanceof WaitStallSweeper && thresholdMs > 0) {
      this.watcher.setThreshold(thresholdMs);
      return;
    }
    this.watcher.stop();
    this.watcher =
      thresholdMs > 0
        ? new WaitStallSweeper<LeasePool, Lease, PoolStarvation>(thresholdMs, this.waitingQueues, this.perPool, this.onStall, this.sweepOptions)
        : NO_WAIT_WATCH;
    if (thresholdMs > 0 && watching) this.watcher.watch();
  }

  /** The sweeper, for tests and the bench; undefined while stall detection is off. */
  get sweeper(): WaitStallSweeper<LeasePool, Lease, PoolStarvation> | undefined {
    return this.watcher instanceof WaitStallSweeper ? this.watcher : undefined;
  }

  stop(): void {
    this.watcher.stop();
  }

  /** A queued checkout's span just started: its stall event, if any, goes on it now. */
  spanStarted(lease: Lease, span: Span): void {
    const event = this.events.get(lease);
    if (event === undefined) return;
    this.events.delete(lease);
    span.addEvent(EVENT_POOL_WAIT_STALLED, event.attributes, this.host.clock.toSpanTime(event.time));
  }

  /**
   * Ends an open lease ({@link Lease.endAtShutdown}). One that was never granted (provider
   * shutdown, pool ended, disable) first gets how long it waited, the holders and the verdict on
   * its span, as if it had stalled then.
   */
  endAtShutdown(lease: Lease, reason?: string): void {
    this.describeUngranted(lease);
    lease.endAtShutdown(reason);
  }

  private describeUngranted(lease: Lease): void {
    if (!lease.isWaiting) return;
    try {
      const starvation = starvationOf(lease.pool);
      const span = lease.span;
      if (span.isRecording()) span.setAttributes(starvedWaiterAttributes(starvation, lease.requestedAt, causeFor(starvation, lease.requestedAt)));
    } catch (error) {
      this.host.reportError('endingUngranted', error);
    }
  }

  private report(lease: Lease, starvation: PoolStarvation): void {
    if (!lease.isWaiting || this.reported.has(lease)) return;
    this.reported.add(lease);
    const cause = causeFor(starvation, lease.requestedAt);
    const attributes = starvedWaiterAttributes(starvation, lease.requestedAt, cause);
    this.host.metrics.recordWaitStalled(lease.pool, lease.stack, cause);
    const pool = lease.pool;
    const stallSpan = this.tracer().startSpan(
      `${pool.description.library} wait.stalled`,
      { kind: SpanKind.INTERNAL, attributes: { ...pool.attributes, ...lease.stack?.attributes, ...attributes } },
      lease.callerContext,
    );
    stallSpan.end();
    // A checkout that did not queue started its span at the request (LeaseCore.checkout): the
    // event goes on it now. A queued one starts its span later; the event waits for it.
    if (lease.pendingAtRequest === undefined) lease.span.addEvent(EVENT_POOL_WAIT_STALLED, attributes, this.host.clock.toSpanTime(starvation.at));
    else this.events.set(lease, { attributes, time: starvation.at });
  }
}
