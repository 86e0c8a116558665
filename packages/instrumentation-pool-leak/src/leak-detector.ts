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
  /** Stops the timer (instrumentation disabled). */
  stop(): void;
}

export const NO_LEAK_WATCH: LeakWatch<WatchedLease> = { watch() {}, unwatch() {}, stop() {} };

/** Sweep period: a quarter of the threshold, between 5 ms and 1 s. */
export function sweepIntervalFor(thresholdMs: number): number {
  return Math.min(1000, Math.max(5, Math.floor(thresholdMs / 4)));
}

/**
 * One shared, unref'd timer for all leases. Leases sit in a Set in grant order, so the oldest
 * come first and a sweep stops at the first lease still under the threshold: the work per sweep
 * is proportional to the leases that expired, not to the leases open. A reported lease leaves the
 * set, so it is reported once. The timer stops itself when nothing is watched and restarts at
 * the next grant, and never keeps the process alive.
 */
export class LeakSweeper<L extends WatchedLease> implements LeakWatch<L> {
  private readonly held = new Set<L>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly thresholdMs: number,
    private readonly onLeak: (lease: L, heldMs: number) => void,
    private readonly intervalMs = sweepIntervalFor(thresholdMs),
  ) {}

  watch(lease: L): void {
    this.held.add(lease);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.intervalMs);
      this.timer.unref();
    }
  }

  unwatch(lease: L): void {
    this.held.delete(lease);
  }

  /** Reports every lease past the threshold; returns how many. Public for the bench. */
  sweep(now = performance.now()): number {
    let reported = 0;
    for (const lease of this.held) {
      const heldMs = now - lease.grantedAt;
      if (heldMs < this.thresholdMs) break;
      this.held.delete(lease);
      reported++;
      this.onLeak(lease, heldMs);
    }
    if (this.held.size === 0) this.stop();
    return reported;
  }

  /** Leases watched and not yet reported. */
  get size(): number {
    return this.held.size;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
