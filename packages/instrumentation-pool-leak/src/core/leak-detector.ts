import type { LeaseQueue, Queued } from './lease-queue';
import { SlicedSweep, type SlicedSweepOptions } from './sliced-sweep';

export { loopScheduler, SWEEP_BUDGET_MS, sweepIntervalFor, type SweepScheduler } from './sliced-sweep';

/** What the leak detector needs to know about a lease. */
export interface WatchedLease extends Queued {
  /** `performance.now()` at the grant. */
  readonly grantedAt: number;
  /** Whether the lease was reported as a suspected leak already (by a sweep or at its checkin). */
  readonly leakSuspected: boolean;
}

/**
 * Watches granted leases for the leak threshold: they sit in their pool's held queue, in grant
 * order, which the sweep walks. The lease core calls `watch` at every grant, unconditionally:
 * with detection off it is the shared no-op {@link NO_LEAK_WATCH}, so the hot path has no
 * "is it enabled?" branch. Leaving the held queue (the checkin) is leaving the watch.
 */
export interface LeakWatch<L extends WatchedLease> {
  /** A lease joined a held queue. */
  watch(): void;
  /**
   * The lease is being checked in at `now`: if it crossed the threshold and no sweep reported it
   * yet (a loaded loop fires sweeps late, a sliced sweep may not have reached it), it is reported
   * now, before its span ends. A sweep may be late or sliced; no lease over the threshold is skipped.
   */
  settle(lease: L, now: number): void;
  /** Stops the timer (instrumentation disabled). */
  stop(): void;
}

export const NO_LEAK_WATCH: LeakWatch<WatchedLease> = { watch() {}, settle() {}, stop() {} };

/** How the leak sweep runs (see {@link SlicedSweepOptions}). */
export type LeakSweeperOptions = SlicedSweepOptions;

/**
 * One shared, unref'd timer for all leases, walking the held queues (see {@link SlicedSweep}): a
 * lease past the threshold is reported once, by a sweep or at its checkin, whichever comes first.
 */
export class LeakSweeper<L extends WatchedLease> extends SlicedSweep<L> implements LeakWatch<L> {
  constructor(
    thresholdMs: number,
    heldQueues: () => Iterable<LeaseQueue<L>>,
    private readonly onLeak: (lease: L, heldMs: number) => void,
    options: LeakSweeperOptions = {},
  ) {
    super(thresholdMs, heldQueues, options);
  }

  settle(lease: L, now: number): void {
    const heldMs = now - lease.grantedAt;
    if (heldMs < this.thresholdMs || lease.leakSuspected) return;
    this.onLeak(lease, heldMs);
  }

  protected startOf(lease: L): number {
    return lease.grantedAt;
  }

  protected report(lease: L, heldMs: number): void {
    if (!lease.leakSuspected) this.onLeak(lease, heldMs);
  }
}
