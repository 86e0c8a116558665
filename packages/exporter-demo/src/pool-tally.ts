// Per-pool tallies of checkout spans, and the verdict on each pool. Everything comes from the
// exported spans alone (pool.wait_ms, pool.pending_at_request, the pool.exhausted event), so the
// verdict works for any application; it is decided at report time, when the leak table is final.
// Why the pool ran dry is the instrumentation's `pool.exhaustion.cause` (its one rule, see the
// instrumentation's README), the cause its pool.exhausted events named most; the tallies only
// say who and by how much. Spans from an instrumentation that did not write the cause yet get
// the older reading of the holders (leaking call sites held most slots → leaks, else undersized).
import { hrTimeToMilliseconds } from '@opentelemetry/core';
import {
  ATTR_DB_CLIENT_CONNECTION_MAX,
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_POOL_EXHAUSTION_CAUSE,
  ATTR_POOL_HOLDERS,
  ATTR_POOL_HOLDERS_COUNT,
  ATTR_POOL_LIBRARY,
  ATTR_POOL_PENDING,
  ATTR_POOL_PENDING_AT_REQUEST,
  ATTR_POOL_WAIT_MS,
  EVENT_POOL_EXHAUSTED,
} from 'opentelemetry-instrumentation-pool-leak';
import type { Caller } from './call-path';
import { parseHolder, siteKey, type CallSite, type NameCaller } from './call-site';
import type { ReportSpan } from './report-span';

/** Pools kept apart; checkouts of further pools are counted under one "other pools" row. */
const MAX_POOLS = 20;
/** Distinct holder call sites kept per pool; further holder slots count as unknown. */
const MAX_HOLDER_SITES = 50;
/** Wait times kept per pool for the percentiles: exact up to this many checkouts, sampled after. */
const WAIT_SAMPLES = 2048;
export const OTHER_POOLS = '(other pools)';

/** Why the pool ran dry, or that it did not. */
export type PoolVerdict =
  /** No checkout failed for lack of a connection. */
  | { readonly kind: 'ok' }
  /**
   * Checkouts timed out, and most holders at those moments were leases of a leaking call site
   * (one that passed the leak threshold or never came back) that had held their connection
   * through the whole wait.
   */
  | {
      readonly kind: 'leaks';
      /** The leaking call path (from the `pool.holders` entries), and the caller it is named by. */
      readonly site: CallSite;
      readonly caller: Caller;
      readonly slots: number;
      readonly holderSlots: number;
    }
  /** Checkouts timed out while the holders kept turning over: more demand than connections. */
  | { readonly kind: 'undersized'; readonly demand: number; readonly max: number | undefined }
  /** Most holders were running one statement through the whole wait (`slow_queries`). */
  | { readonly kind: 'slow queries' }
  /** No one cause held most connections (`mixed`). */
  | { readonly kind: 'mixed' };

/** Values of the instrumentation's `pool.exhaustion.cause`. */
type ExhaustionCause = 'leaked_connections' | 'slow_queries' | 'undersized_pool' | 'mixed';
const CAUSES: readonly string[] = ['leaked_connections', 'slow_queries', 'undersized_pool', 'mixed'];

/** One pool's line in the report. */
export interface PoolReport {
  /** `db.client.connection.pool.name` of its checkout spans. */
  readonly name: string;
  /** `db.client.connection.max`, known once a checkout failed on the exhausted pool. */
  readonly max: number | undefined;
  readonly checkouts: number;
  /** Checkouts that got a connection (they carry `pool.wait_ms`). */
  readonly granted: number;
  /** Checkouts that had to queue (they carry `pool.pending_at_request`). */
  readonly queued: number;
  /** Checkouts that failed with a `pool.exhausted` event (pg-pool: its connection timeout). */
  readonly timeouts: number;
  /** Most requests seen waiting at once: `pool.pending_at_request` and `pool.pending`. */
  readonly peakPending: number;
  /** Percentiles of `pool.wait_ms` of granted checkouts; undefined when none was granted. */
  readonly waitP50Ms: number | undefined;
  readonly waitP99Ms: number | undefined;
  readonly verdict: PoolVerdict;
}

/** Tells whether a call site leaked (threshold passed, or still open at shutdown). */
export type IsLeakingSite = (key: string) => boolean;


interface HolderTally {
  readonly site: CallSite;
  /** Held the connection through the whole wait of the checkout that failed. */
  stuck: number;
  /** Taken after the failing checkout started waiting: the pool was turning over. */
  turnedOver: number;
}

/** What one pool's checkout spans said; only counters, bounded samples and bounded tables. */
class PoolTally {
  checkouts = 0;
  granted = 0;
  queued = 0;
  timeouts = 0;
  peakPending = 0;
  peakPendingAtRequest: number | undefined;
  /** Held + queued + the failing request itself, at the worst `pool.exhausted` moment. */
  peakExhaustedDemand = 0;
  max: number | undefined;
  readonly waits = new Reservoir(WAIT_SAMPLES);
  readonly holders = new Map<string, HolderTally>();
  /** Holder slots with no call site, past the table cap, or in the part of the list not shown. */
  unknownHolderSlots = 0;
  /** `pool.exhaustion.cause` of each pool.exhausted event that carried one. */
  readonly causes = new Map<ExhaustionCause, number>();

  record(span: ReportSpan): void {
    this.checkouts++;
    const { attributes } = span;
    const waitMs = attributes[ATTR_POOL_WAIT_MS];
    if (typeof waitMs === 'number') {
      this.granted++;
      this.waits.add(waitMs);
    }
    const pendingAtRequest = attributes[ATTR_POOL_PENDING_AT_REQUEST];
    if (typeof pendingAtRequest === 'number') {
      this.queued++;
      this.peakPendingAtRequest = Math.max(this.peakPendingAtRequest ?? 0, pendingAtRequest);
      this.peakPending = Math.max(this.peakPending, pendingAtRequest);
    }
    const exhausted = span.events.find((event) => event.name === EVENT_POOL_EXHAUSTED);
    if (exhausted !== undefined) this.recordExhausted(exhausted.attributes ?? {}, hrTimeToMilliseconds(span.duration));
  }

  /** A checkout that failed on an exhausted pool, after waiting `waitedMs`. */
  private recordExhausted(attributes: Record<string, unknown>, waitedMs: number): void {
    this.timeouts++;
    const max = attributes[ATTR_DB_CLIENT_CONNECTION_MAX];
    if (typeof max === 'number') this.max = max;
    const cause = attributes[ATTR_POOL_EXHAUSTION_CAUSE];
    if (typeof cause === 'string' && CAUSES.includes(cause)) this.causes.set(cause as ExhaustionCause, (this.causes.get(cause as ExhaustionCause) ?? 0) + 1);
    const pending = numberOr(attributes[ATTR_POOL_PENDING], 0);
    this.peakPending = Math.max(this.peakPending, pending);
    const entries = attributes[ATTR_POOL_HOLDERS];
    const holders = Array.isArray(entries) ? entries.filter((entry): entry is string => typeof entry === 'string') : [];
    const holderCount = numberOr(attributes[ATTR_POOL_HOLDERS_COUNT], holders.length);
    this.peakExhaustedDemand = Math.max(this.peakExhaustedDemand, holderCount + pending + 1);
    // The event names at most 10 holders; the rest cannot be told apart.
    this.unknownHolderSlots += Math.max(0, holderCount - holders.length);
    for (const entry of holders) this.recordHolder(entry, waitedMs);
  }

  private recordHolder(entry: string, waitedMs: number): void {
    const holder = parseHolder(entry);
    if (holder?.site === undefined) {
      this.unknownHolderSlots++;
      return;
    }
    const key = siteKey(holder.site);
    let tally = this.holders.get(key);
    if (tally === undefined) {
      if (this.holders.size >= MAX_HOLDER_SITES) {
        this.unknownHolderSlots++;
        return;
      }
      tally = { site: holder.site, stuck: 0, turnedOver: 0 };
      this.holders.set(key, tally);
    }
    // Holder times are whole milliseconds; the wait is not.
    if (holder.heldMs >= Math.floor(waitedMs)) tally.stuck++;
    else tally.turnedOver++;
  }

  report(name: string, isLeakingSite: IsLeakingSite, nameCaller: NameCaller): PoolReport {
    const waits = this.waits.sorted();
    return {
      name,
      max: this.max,
      checkouts: this.checkouts,
      granted: this.granted,
      queued: this.queued,
      timeouts: this.timeouts,
      peakPending: this.peakPending,
      waitP50Ms: percentile(waits, 0.5),
      waitP99Ms: percentile(waits, 0.99),
      verdict: this.verdict(isLeakingSite, nameCaller),
    };
  }

  private verdict(isLeakingSite: IsLeakingSite, nameCaller: NameCaller): PoolVerdict {
    if (this.timeouts === 0) return { kind: 'ok' };
    const cause = this.mostNamedCause();
    if (cause === 'slow_queries') return { kind: 'slow queries' };
    if (cause === 'mixed') return { kind: 'mixed' };
    if (cause === 'undersized_pool') return { kind: 'undersized', demand: this.peakDemand(), max: this.max };
    const leaks = this.leakVerdict(isLeakingSite, nameCaller, cause === 'leaked_connections');
    if (leaks !== undefined) return leaks;
    return cause === 'leaked_connections' ? { kind: 'mixed' } : { kind: 'undersized', demand: this.peakDemand(), max: this.max };
  }

  /** The cause the pool's exhausted events named most; undefined when none named one. */
  private mostNamedCause(): ExhaustionCause | undefined {
    let best: ExhaustionCause | undefined;
    for (const [cause, count] of this.causes) if (best === undefined || count > (this.causes.get(best) ?? 0)) best = cause;
    return best;
  }

  /**
   * The leaking call site that held the most slots through the waits. With `decided` (the
   * instrumentation said leaked_connections), the site that held the most slots through the
   * waits, leaking or not; without it, only when leaking sites held at least half the slots.
   */
  private leakVerdict(isLeakingSite: IsLeakingSite, nameCaller: NameCaller, decided: boolean): PoolVerdict | undefined {
    let holderSlots = this.unknownHolderSlots;
    let leakSlots = 0;
    let top: HolderTally | undefined;
    for (const [key, tally] of this.holders) {
      holderSlots += tally.stuck + tally.turnedOver;
      if (!isLeakingSite(key)) continue;
      leakSlots += tally.stuck;
      if (top === undefined || tally.stuck > top.stuck) top = tally;
    }
    if (decided && (top === undefined || top.stuck === 0)) {
      for (const tally of this.holders.values()) if (top === undefined || tally.stuck > top.stuck) top = tally;
    }
    if (top !== undefined && top.stuck > 0 && (decided || leakSlots * 2 >= holderSlots)) {
      return { kind: 'leaks', site: top.site, caller: nameCaller(top.site), slots: top.stuck, holderSlots };
    }
    return undefined;
  }

  /**
   * Requests that wanted a connection at once, at the worst moment seen: holders + waiters + the
   * failing request at a `pool.exhausted` event, or a full pool + the waiters ahead + the request
   * itself for a checkout that had to queue.
   */
  private peakDemand(): number {
    const queuedDemand = this.max === undefined || this.peakPendingAtRequest === undefined ? 0 : this.max + this.peakPendingAtRequest + 1;
    return Math.max(this.peakExhaustedDemand, queuedDemand);
  }
}

/** Checkout spans by pool name; at most {@link MAX_POOLS} pools, the rest counted together. */
export class PoolTallies {
  private readonly pools = new Map<string, PoolTally>();

  record(span: ReportSpan): void {
    this.tallyOf(poolNameOf(span)).record(span);
  }

/** One report per pool: pools that timed out first, most timeouts first, then by name. */
  reports(isLeakingSite: IsLeakingSite, nameCaller: NameCaller): PoolReport[] {
    return [...this.pools]
      .map(([name, tally]) => tally.report(name, isLeakingSite, nameCaller))
      .sort((a, b) => b.timeouts - a.timeouts || a.name.localeCompare(b.name));
  }

  private tallyOf(name: string): PoolTally {
    const known = this.pools.get(name);
    if (known !== undefined) return known;
    const key = this.pools.size < MAX_POOLS ? name : OTHER_POOLS;
    let tally = this.pools.get(key);
    if (tally === undefined) {
      tally = new PoolTally();
      this.pools.set(key, tally);
    }
    return tally;
  }
}

function poolNameOf(span: ReportSpan): string {
  const name = span.attributes[ATTR_DB_CLIENT_CONNECTION_POOL_NAME] ?? span.attributes[ATTR_POOL_LIBRARY];
  return typeof name === 'string' && name !== '' ? name : '(unnamed pool)';
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], fraction: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))];
}

/**
 * A uniform sample of at most `capacity` values (reservoir sampling): every value while fewer
 * came, so a demo run's percentiles are exact, and bounded memory for a long-running service.
 */
export class Reservoir {
  private readonly values: number[] = [];
  private seen = 0;

  constructor(private readonly capacity: number) {}

  add(value: number): void {
    this.seen++;
    if (this.values.length < this.capacity) {
      this.values.push(value);
      return;
    }
    const slot = Math.floor(Math.random() * this.seen);
    if (slot < this.capacity) this.values[slot] = value;
  }

  sorted(): number[] {
    return [...this.values].sort((a, b) => a - b);
  }
}
