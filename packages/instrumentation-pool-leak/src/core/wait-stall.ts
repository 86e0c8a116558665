import type { LeaseQueue, Queued } from './lease-queue';
import { SlicedSweep, type SlicedSweepOptions } from './sliced-sweep';

/** What the stall sweep reads of a waiting checkout. */
export interface WaitingLease<P> extends Queued {
  /** `performance.now()` at the request. */
  readonly requestedAt: number;
  readonly pool: P;
}

/**
 * Watches waiting checkouts for the wait threshold: they sit in their pool's waiting queue, in
 * request order, which the sweep walks. The core calls `watch` at every checkout,
 * unconditionally: with stall detection off it is the shared no-op {@link NO_WAIT_WATCH}.
 * Leaving the waiting queue (the grant or the end) is leaving the watch.
 */
export interface WaitWatch {
  /** A checkout joined a waiting queue. */
  watch(): void;
  /** Stops the timer (instrumentation disabled). */
  stop(): void;
}

export const NO_WAIT_WATCH: WaitWatch = { watch() {}, stop() {} };

/** How the stall sweep runs (see {@link SlicedSweepOptions}). */
export type WaitStallSweeperOptions = SlicedSweepOptions;

/**
 * Reports checkouts that have waited longer than the threshold, once each, in request order
 * (see {@link SlicedSweep}). What a report needs of its pool (the holders, the verdict's facts)
 * is gathered once per pool per turn of the sweep by `perPool` and handed to every stalled
 * waiter of that pool: a queue of 20,000 waiters costs one holders list per pool, not 20,000.
 */
export class WaitStallSweeper<P, L extends WaitingLease<P>, S> extends SlicedSweep<L> implements WaitWatch {
  private pools = new Map<P, S>();

  constructor(
    thresholdMs: number,
    waitingQueues: () => Iterable<LeaseQueue<L>>,
    private readonly perPool: (pool: P, now: number) => S,
    private readonly onStall: (lease: L, waitedMs: number, pool: S) => void,
    options: WaitStallSweeperOptions = {},
  ) {
    super(thresholdMs, waitingQueues, options);
  }

  /** As {@link SlicedSweep.sweep}, with waits measured on the sweep's own clock. */
  override sweep(now = this.clock()): number {
    return super.sweep(now);
  }

  protected startOf(lease: L): number {
    return lease.requestedAt;
  }

  protected override beginTurn(): void {
    this.pools = new Map();
  }

  protected report(lease: L, waitedMs: number, now: number): void {
    let pool = this.pools.get(lease.pool);
    if (pool === undefined) {
      pool = this.perPool(lease.pool, now);
      this.pools.set(lease.pool, pool);
    }
    this.onStall(lease, waitedMs, pool);
  }
}
