import { SlicedSweep, type SlicedSweepOptions } from './sliced-sweep';

/** What the stall sweep reads of a waiting checkout. */
export interface WaitingLease<P> {
  /** `performance.now()` at the request. */
  readonly requestedAt: number;
  readonly pool: P;
}

/**
 * Watches waiting checkouts for the wait threshold. The core calls `watch` at every checkout and
 * `unwatch` at its grant or end, unconditionally: with stall detection off they are the shared
 * no-op {@link NO_WAIT_WATCH}.
 */
export interface WaitWatch<L> {
  watch(lease: L): void;
  unwatch(lease: L): void;
  /** Stops the timer (instrumentation disabled). */
  stop(): void;
}

export const NO_WAIT_WATCH: WaitWatch<unknown> = { watch() {}, unwatch() {}, stop() {} };

/** How the stall sweep runs (see {@link SlicedSweepOptions}). */
export type WaitStallSweeperOptions = SlicedSweepOptions;

/**
 * Reports checkouts that have waited longer than the threshold, once each, in request order
 * (see {@link SlicedSweep}). What a report needs of its pool (the holders, the verdict's facts)
 * is gathered once per pool per turn of the sweep by `perPool` and handed to every stalled
 * waiter of that pool: a queue of 20,000 waiters costs one holders list per pool, not 20,000.
 */
export class WaitStallSweeper<P, L extends WaitingLease<P>, S> extends SlicedSweep<L> implements WaitWatch<L> {
  private pools = new Map<P, S>();

  constructor(
    thresholdMs: number,
    private readonly perPool: (pool: P, now: number) => S,
    private readonly onStall: (lease: L, waitedMs: number, pool: S) => void,
    options: WaitStallSweeperOptions = {},
  ) {
    super(thresholdMs, options);
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
