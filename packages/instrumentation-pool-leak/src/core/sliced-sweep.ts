import { AsyncResource } from 'node:async_hooks';
import type { LeaseQueue, Queued } from './lease-queue';

/** Sweep period: a quarter of the threshold, between 5 ms and 1 s. */
export function sweepIntervalFor(thresholdMs: number): number {
  return Math.min(1000, Math.max(5, Math.floor(thresholdMs / 4)));
}

/** Work a sweep does in one turn of the event loop before it yields (DESIGN.md: a small budget). */
export const SWEEP_BUDGET_MS = 5;

/**
 * When sweeps run. Injected so that tests drive the turns themselves instead of racing the
 * event loop (a loaded machine fires the interval between two `setImmediate` turns).
 */
export interface SweepScheduler {
  /** Runs `fn` every `ms` without keeping the process alive; returns its cancel function. */
  every(ms: number, fn: () => void): () => void;
  /** Runs `fn` once on a later turn of the event loop; returns its cancel function. */
  nextTurn(fn: () => void): () => void;
}

/**
 * The event loop: an unref'd interval and an unref'd immediate, started in the async context the
 * scheduler was made in (the instrumentation's set-up), not in whichever request's context the
 * first grant after an idle spell runs: a timer keeps the context it was created in (its async
 * context frame), and the sweep's interval outlives any request — it would keep that request's
 * spans and everything else in its context alive for as long as leases are watched.
 */
export function loopScheduler(): SweepScheduler {
  const scope = new AsyncResource('pool-leak.leak-sweep');
  return {
    every(ms, fn) {
      const timer = scope.runInAsyncScope(() => setInterval(fn, ms));
      timer.unref();
      return () => clearInterval(timer);
    },
    nextTurn(fn) {
      const immediate = scope.runInAsyncScope(() => setImmediate(fn));
      immediate.unref();
      return () => clearImmediate(immediate);
    },
  };
}

/** How a sliced sweep runs; every field has a default. */
export interface SlicedSweepOptions {
  /** Sweep period; default {@link sweepIntervalFor} the threshold. */
  readonly intervalMs?: number;
  /** Milliseconds of reporting per turn of the event loop; default {@link SWEEP_BUDGET_MS}. */
  readonly budgetMs?: number;
  /** The clock the budget is measured with; default `performance.now`. */
  readonly clock?: () => number;
  /** When sweeps run; default {@link loopScheduler}, made when the sweep is. */
  readonly scheduler?: SweepScheduler;
}

/**
 * The one sweep behind the leak and the stall watches. It walks queues whose items sit in the
 * order their clock started (a pool's held leases by grant, its waiting ones by request; see
 * {@link LeaseQueue}), each from its first item not yet passed, and stops in each at the first
 * item still under the threshold: its work is proportional to the items due, not to the items
 * watched. An item is passed once, so it is reported once. A mass expiry is reported within a
 * budget per turn of the event loop: when it is spent, the sweep goes on at the next turn, so the
 * loop never stalls on it and no item due is skipped. One unref'd timer, stopped while no queue
 * has an item left to pass.
 */
export abstract class SlicedSweep<T extends Queued> {
  /** Cancels the periodic sweep; undefined while none is scheduled. */
  private timer: (() => void) | undefined;
  /** Cancels the next turn of a sweep that ran out of budget. */
  private continuation: (() => void) | undefined;
  private intervalMs: number;
  private readonly fixedIntervalMs: number | undefined;
  private readonly budgetMs: number;
  protected readonly clock: () => number;
  private readonly scheduler: SweepScheduler;

  constructor(
    protected thresholdMs: number,
    /** The queues to walk, read at every sweep (the pools with open leases come and go). */
    private readonly queues: () => Iterable<LeaseQueue<T>>,
    options: SlicedSweepOptions = {},
  ) {
    this.fixedIntervalMs = options.intervalMs;
    this.intervalMs = options.intervalMs ?? sweepIntervalFor(thresholdMs);
    this.budgetMs = options.budgetMs ?? SWEEP_BUDGET_MS;
    this.clock = options.clock ?? (() => performance.now());
    this.scheduler = options.scheduler ?? loopScheduler();
  }

  /** `performance.now()` at which the item's clock started. */
  protected abstract startOf(item: T): number;
  /** Reports an item past the threshold; the sweep has passed it. */
  protected abstract report(item: T, ageMs: number, now: number): void;
  /** A sweep turn begins (before its first report). */
  protected beginTurn(): void {}

  /** An item joined one of the queues: sweeps run until every item was passed. A flag test when they do. */
  watch(): void {
    if (this.timer === undefined) this.startTimer();
  }

  /** A new threshold for the items already watched and those to come: nothing watched is dropped. */
  setThreshold(thresholdMs: number): void {
    this.thresholdMs = thresholdMs;
    this.intervalMs = this.fixedIntervalMs ?? sweepIntervalFor(thresholdMs);
    if (this.timer !== undefined) {
      this.timer();
      this.startTimer();
    }
  }

  /**
   * Reports items past the threshold, oldest first in each queue, until the budget of this turn
   * is spent; the rest follow on the next turns. Returns how many were reported in this turn.
   * Public for the bench and the tests.
   */
  sweep(now = performance.now()): number {
    const deadline = this.clock() + this.budgetMs;
    let reported = 0;
    let young = false;
    this.beginTurn();
    for (const queue of this.queues()) {
      for (let item = queue.unswept; item !== undefined; item = queue.unswept) {
        const ageMs = now - this.startOf(item);
        if (ageMs < this.thresholdMs) {
          young = true;
          break;
        }
        // Passed before the report: a report that ends the item leaves the queue consistent.
        queue.unswept = queue.after(item);
        reported++;
        this.report(item, ageMs, now);
        // Reading the clock (~0.05 µs) is small beside a report (a span, an event, a counter).
        if (this.clock() >= deadline) {
          this.continueNextTurn();
          return reported;
        }
      }
    }
    if (!young) this.stop();
    return reported;
  }

  /** Items no sweep has passed yet (tests and the bench; walks them). */
  get size(): number {
    let count = 0;
    for (const queue of this.queues()) for (let item = queue.unswept; item !== undefined; item = queue.after(item)) count++;
    return count;
  }

  stop(): void {
    this.timer?.();
    this.timer = undefined;
    this.continuation?.();
    this.continuation = undefined;
  }

  private startTimer(): void {
    this.timer = this.scheduler.every(this.intervalMs, () => {
      // A sweep still spread over turns covers what this one would.
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
