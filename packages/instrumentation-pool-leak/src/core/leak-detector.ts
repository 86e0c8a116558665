import { AsyncResource } from 'node:async_hooks';
import { CompactingSet } from './compacting-set';

/** What the leak detector needs to know about a lease. */
export interface WatchedLease {
  /** `performance.now()` at the grant. */
  readonly grantedAt: number;
}

/**
 * Watches granted leases for the leak threshold. The lease core calls `watch` at every grant and
 * `unwatch` at every checkin, unconditionally: with detection off they are the shared no-op
 * {@link NO_LEAK_WATCH}, so the hot path has no "is it enabled?" branch.
 */
export interface LeakWatch<L extends WatchedLease> {
  watch(lease: L): void;
  unwatch(lease: L): void;
  /**
   * The lease is being checked in at `now`: if it crossed the threshold and no sweep reported it
   * yet (a loaded loop fires sweeps late, a sliced sweep may not have reached it), it is reported
   * now, before its span ends. A sweep may be late or sliced; no lease over the threshold is skipped.
   */
  settle(lease: L, now: number): void;
  /** Stops the timer (instrumentation disabled). */
  stop(): void;
}

export const NO_LEAK_WATCH: LeakWatch<WatchedLease> = { watch() {}, unwatch() {}, settle() {}, stop() {} };

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

export interface LeakSweeperOptions {
  /** Sweep period; default {@link sweepIntervalFor} the threshold. */
  readonly intervalMs?: number;
  /** Milliseconds of reporting per turn of the event loop; default {@link SWEEP_BUDGET_MS}. */
  readonly budgetMs?: number;
  /** The clock the budget is measured with; default `performance.now`. */
  readonly clock?: () => number;
  /** When sweeps run; default {@link loopScheduler}, made when the sweeper is. */
  readonly scheduler?: SweepScheduler;
}

/**
 * One shared, unref'd timer for all leases. Leases sit in a Set in grant order, so the oldest
 * come first and a sweep stops at the first lease still under the threshold: the work per sweep
 * is proportional to the leases that expired, not to the leases open. A reported lease leaves the
 * set, so it is reported once. A mass expiry is reported within a budget per turn of the event
 * loop: when it is spent, the sweep goes on at the next turn (setImmediate), so the loop never
 * stalls on it. The timer stops itself when nothing is watched and restarts at the next grant,
 * and never keeps the process alive.
 */
export class LeakSweeper<L extends WatchedLease> implements LeakWatch<L> {
  /** Grant order; gives its table back after a mass release (see {@link CompactingSet}). */
  private readonly held = new CompactingSet<L>();
  /** Cancels the periodic sweep; undefined while none is scheduled. */
  private timer: (() => void) | undefined;
  /** Cancels the next turn of a sweep that ran out of budget. */
  private continuation: (() => void) | undefined;
  private intervalMs: number;
  private readonly fixedIntervalMs: number | undefined;
  private readonly budgetMs: number;
  private readonly clock: () => number;
  private readonly scheduler: SweepScheduler;

  constructor(
    private thresholdMs: number,
    private readonly onLeak: (lease: L, heldMs: number) => void,
    options: LeakSweeperOptions = {},
  ) {
    this.fixedIntervalMs = options.intervalMs;
    this.intervalMs = options.intervalMs ?? sweepIntervalFor(thresholdMs);
    this.budgetMs = options.budgetMs ?? SWEEP_BUDGET_MS;
    this.clock = options.clock ?? (() => performance.now());
    this.scheduler = options.scheduler ?? loopScheduler();
  }

  watch(lease: L): void {
    this.held.add(lease);
    if (this.timer === undefined) this.startTimer();
  }

  unwatch(lease: L): void {
    this.held.delete(lease);
  }

  settle(lease: L, now: number): void {
    const heldMs = now - lease.grantedAt;
    if (heldMs < this.thresholdMs || !this.held.delete(lease)) return;
    this.onLeak(lease, heldMs);
  }

  /**
   * A new threshold for the leases already watched and those to come (the configuration
   * changed): nothing watched is dropped.
   */
  setThreshold(thresholdMs: number): void {
    this.thresholdMs = thresholdMs;
    this.intervalMs = this.fixedIntervalMs ?? sweepIntervalFor(thresholdMs);
    if (this.timer !== undefined) {
      this.timer();
      this.startTimer();
    }
  }

  /**
   * Reports leases past the threshold, oldest first, until the budget of this turn is spent;
   * the rest follow on the next turns. Returns how many were reported in this turn. Public for
   * the bench and the tests.
   */
  sweep(now = performance.now()): number {
    const deadline = this.clock() + this.budgetMs;
    let reported = 0;
    for (const lease of this.held) {
      const heldMs = now - lease.grantedAt;
      if (heldMs < this.thresholdMs) break;
      // False only for a lease a report above checked in: the loop may walk a table re-created under it.
      if (!this.held.delete(lease)) continue;
      reported++;
      this.onLeak(lease, heldMs);
      // Reading the clock (~0.05 µs) is small beside a report (a span, an event, a counter).
      if (this.clock() >= deadline) {
        this.continueNextTurn();
        return reported;
      }
    }
    if (this.held.size === 0) this.stop();
    return reported;
  }

  /** Leases watched and not yet reported. */
  get size(): number {
    return this.held.size;
  }

  stop(): void {
    this.timer?.();
    this.timer = undefined;
    this.continuation?.();
    this.continuation = undefined;
  }

  private startTimer(): void {
    this.timer = this.scheduler.every(this.intervalMs, () => this.sweepFromTimer());
  }

  private sweepFromTimer(): void {
    // A sweep still spread over turns covers what this one would.
    if (this.continuation === undefined) this.sweep();
  }

  private continueNextTurn(): void {
    if (this.continuation !== undefined) return;
    this.continuation = this.scheduler.nextTurn(() => {
      this.continuation = undefined;
      this.sweep();
    });
  }
}
