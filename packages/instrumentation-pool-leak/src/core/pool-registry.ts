import type { Lease, LeasePool } from './lease';
import { describedBy, elsewhereReader, gaugesOff, guardedStatsReader, type PoolProbe, type ProbeFaultReport } from './pool-probe';
import { TrackedPool } from './tracked-pool';

/** Pools kept for metric collection before dead ones are pruned on the next new pool. */
const PRUNE_POOLS_ABOVE = 64;

/**
 * The pools the instrumentation has seen, found by their library object: described once, kept
 * weakly (a dropped pool takes its entry with it), and the subset with open leases, which is
 * all that disabling or shutting down has to walk.
 */
export class PoolRegistry {
  private readonly pools = new WeakMap<object, LeasePool>();
  /** Every tracked pool whose library object may still be alive, for metric collection. */
  private readonly observedPools = new Map<LeasePool, WeakRef<object>>();
  /**
   * Pools that have had an open lease since they were last found without one: a superset of the
   * pools with open leases, which is all that disabling or shutting down has to walk. A pool is
   * listed at its first lease and unlisted lazily (when a walk finds it empty, or its library
   * object is collected), not at every checkin: a pool that turns idle between two checkouts
   * would otherwise pay a Set insertion and deletion per checkout.
   */
  private readonly listedPools = new Set<LeasePool>();
  /**
   * Tells the core when the application dropped a pool object: a waiter of a pool that will
   * never serve it (pg-pool after `end()`) would otherwise stay open, and keep its span, forever.
   */
  private readonly poolCollected: FinalizationRegistry<LeasePool>;

  constructor(
    onPoolGone: (pool: LeasePool) => void,
    /** Told once per pool whose probe threw or returned garbage (its gauges are then off). */
    private readonly onProbeFault: ProbeFaultReport = () => {},
    /** Where a probe's other failures go (once per place). */
    private readonly onError: (where: string, error: unknown) => void = () => {},
  ) {
    this.poolCollected = new FinalizationRegistry<LeasePool>((pool) => {
      this.observedPools.delete(pool);
      onPoolGone(pool);
      this.unlist(pool);
    });
  }

  /** The tracked pool of a library pool object, if it was seen. */
  get(poolObject: object): LeasePool | undefined {
    return this.pools.get(poolObject);
  }

  /** The tracked pool for a library pool object, described on first sight only. */
  track<P extends object>(pool: P, probe: PoolProbe<P>): LeasePool {
    let tracked = this.pools.get(pool);
    if (tracked === undefined) {
      const ref = new WeakRef(pool);
      const stats = probe.stats;
      const isTimeout = probe.isTimeout;
      const isExhausted = probe.isExhausted;
      const dbSystemOf = probe.dbSystemOf;
      // A describe that throws costs the pool its gauges, never its spans.
      const [description, fault] = describedBy(probe, pool);
      let created: LeasePool | undefined;
      const self = (): LeasePool => created as LeasePool;
      created = new TrackedPool<Lease>(
        description,
        stats === undefined ? undefined : guardedStatsReader(stats, ref, self, this.onProbeFault),
        isTimeout === undefined ? undefined : (error) => isTimeout(error),
        isExhausted === undefined ? undefined : (error) => isExhausted(error),
        dbSystemOf === undefined ? undefined : (connection) => dbSystemOf(connection),
      );
      tracked = created;
      if (fault !== undefined) gaugesOff(tracked, fault, this.onProbeFault);
      const elsewhere = probe.reportedElsewhere;
      if (elsewhere !== undefined) tracked.reportedElsewhere = elsewhereReader((poolObject: P) => elsewhere.call(probe, poolObject), ref, this.onError);
      this.pools.set(pool, tracked);
      this.poolCollected.register(pool, tracked);
      if (this.observedPools.size >= PRUNE_POOLS_ABOVE) this.pruneDeadPools();
      this.observedPools.set(tracked, ref);
    }
    return tracked;
  }

  /** Pools whose library object is still alive. */
  *livePools(): Iterable<LeasePool> {
    for (const [pool, ref] of this.observedPools) {
      if (ref.deref() === undefined) this.observedPools.delete(pool);
      else yield pool;
    }
  }

  /** `pool` has an open lease now (at every checkout: adding a listed pool again changes nothing). */
  markBusy(pool: LeasePool): void {
    this.listedPools.add(pool);
  }

  /** The pools with open leases now; pools found without any are unlisted on the way. */
  busyPools(): LeasePool[] {
    const busy: LeasePool[] = [];
    for (const pool of this.listedPools) {
      if (pool.hasOpenLeases) busy.push(pool);
      else this.unlist(pool);
    }
    return busy;
  }

  /** Number of open leases across all pools (tests and diagnostics). */
  get openLeaseCount(): number {
    let count = 0;
    for (const pool of this.busyPools()) count += pool.waitingLeases.size + pool.heldLeases.size;
    return count;
  }

  private unlist(pool: LeasePool): void {
    this.listedPools.delete(pool);
  }

  private pruneDeadPools(): void {
    for (const [pool, ref] of this.observedPools) if (ref.deref() === undefined) this.observedPools.delete(pool);
  }
}
