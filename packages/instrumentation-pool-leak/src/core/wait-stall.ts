import { loopScheduler, SWEEP_BUDGET_MS, sweepIntervalFor, type SweepScheduler } from './leak-detector';

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

export interface WaitStallSweeperOptions {
  /** Sweep period; default {@link sweepIntervalFor} the threshold. */
  readonly intervalMs?: number;
  /** Milliseconds of reporting per turn of the event loop; default {@link SWEEP_BUDGET_MS}. */
  readonly budgetMs?: number;
  /** The clock of the budget and of the waits; default `performance.now`. */
  readonly clock?: () => number;
  /** When sweeps run; default {@link loopScheduler}. */
  readonly scheduler?: SweepScheduler;
}

/**
 * Reports checkouts that have waited longer than the threshold, once each. Waiting checkouts sit
 * in one Set in request order, so a sweep stops at the first one still under the threshold, and
 * a reported one leaves the set. What a report needs of its pool (the holders, the verdict's
 * facts) is gathered once per pool per turn of the sweep by `perPool` and handed to every
 * stalled waiter of that pool: a queue of 20,000 waiters costs one holders list per pool, not
 * 20,000. Like the leak sweep, one unref'd timer, a budget per turn of the event loop (the rest
 * follows on the next turns), and no timer while nothing waits.
 */
export class WaitStallSweeper<P, L extends WaitingLease<P>, S> implements WaitWatch<L> {
  private readonly waiting = new Set<L>();
  private timer: (() => void) | undefined;
  private continuation: (() => void) | undefined;
  private intervalMs: number;
  private readonly fixedIntervalMs: number | undefined;
  private readonly budgetMs: number;
  private readonly clock: () => number;
  private readonly scheduler: SweepScheduler;

  constructor(
    private thresholdMs: number,
    private readonly perPool: (pool: P, now: number) => S,
    private readonly onStall: (lease: L, waitedMs: number, pool: S) => void,
    options: WaitStallSweeperOptions = {},
  ) {
    this.fixedIntervalMs = options.intervalMs;
    this.intervalMs = options.intervalMs ?? sweepIntervalFor(thresholdMs);
    this.budgetMs = options.budgetMs ?? SWEEP_BUDGET_MS;
    this.clock = options.clock ?? (() => performance.now());
    this.scheduler = options.scheduler ?? loopScheduler();
  }

  watch(lease: L): void {
    this.waiting.add(lease);
    if (this.timer === undefined) this.startTimer();
  }

  unwatch(lease: L): void {
    this.waiting.delete(lease);
  }

  /** A new threshold for the waiters already watched and those to come. */
  setThreshold(thresholdMs: number): void {
    this.thresholdMs = thresholdMs;
    this.intervalMs = this.fixedIntervalMs ?? sweepIntervalFor(thresholdMs);
    if (this.timer !== undefined) {
      this.timer();
      this.startTimer();
    }
  }

  /**
   * Reports the waiters past the threshold, oldest first, until the budget of this turn is
   * spent; the rest follow on the next turns. Returns how many were reported in this turn.
   */
  sweep(now = this.clock()): number {
    const deadline = this.clock() + this.budgetMs;
    const pools = new Map<P, S>();
    let reported = 0;
    for (const lease of this.waiting) {
      const waitedMs = now - lease.requestedAt;
      if (waitedMs < this.thresholdMs) break;
      this.waiting.delete(lease);
      reported++;
      let pool = pools.get(lease.pool);
      if (pool === undefined) {
        pool = this.perPool(lease.pool, now);
        pools.set(lease.pool, pool);
      }
      this.onStall(lease, waitedMs, pool);
      if (this.clock() >= deadline) {
        this.continueNextTurn();
        return reported;
      }
    }
    if (this.waiting.size === 0) this.stop();
    return reported;
  }

  /** Waiters watched and not yet reported. */
  get size(): number {
    return this.waiting.size;
  }

  stop(): void {
    this.timer?.();
    this.timer = undefined;
    this.continuation?.();
    this.continuation = undefined;
  }

  private startTimer(): void {
    this.timer = this.scheduler.every(this.intervalMs, () => {
      if (this.continuation === undefined) this.sweep();
    });
  }

  private continueNextTurn(): void {
    if (this.continuation !== undefined) return;
    this.continuation = this.scheduler.nextTurn(() => {
      this.continuation = undefined;
      this.sweep();
    });
  }
}
