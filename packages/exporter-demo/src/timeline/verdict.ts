// Each pool's verdict and top call path, for the first screen of the page. The verdict is the
// instrumentation's `pool.exhaustion.cause` (on `pool.exhausted` and `pool.wait.stalled`): the
// rule lives there, once; the page only counts which cause the pool's reports named most.
import { CALL_PATH_SEPARATOR, CallerNamer, type Caller } from '../call-path';
import type { Lease, PoolTimeline, Timeline } from './pool-timeline';

export type Cause = 'leaked_connections' | 'slow_queries' | 'undersized_pool' | 'mixed';

export interface PoolVerdict {
  /** `ok`: no checkout failed or stalled; `unknown`: it did, and nothing says why. */
  readonly cause: Cause | 'ok' | 'unknown';
  readonly headline: string;
  /** Where the verdict came from, said on the page. */
  readonly source: 'pool.exhaustion.cause' | 'no pool.exhaustion.cause in the file';
}

export interface TopCallPath {
  readonly callPath: string;
  readonly caller: Caller;
  readonly leaked: number;
  readonly leases: number;
  readonly heldMs: number;
}

export interface PoolSummary {
  readonly pool: PoolTimeline;
  readonly verdict: PoolVerdict;
  readonly top: TopCallPath | undefined;
  readonly leaked: number;
}

const HEADLINES: Record<PoolVerdict['cause'], string> = {
  leaked_connections: 'EXHAUSTED BY LEAKED CONNECTIONS',
  slow_queries: 'EXHAUSTED BY SLOW QUERIES',
  undersized_pool: 'UNDERSIZED POOL',
  mixed: 'EXHAUSTED: MIXED CAUSES',
  ok: 'OK — no checkout timed out',
  unknown: 'CHECKOUTS FAILED — cause not recorded',
};

export function summarizePools(timeline: Timeline): PoolSummary[] {
  const namer = new CallerNamer(timeline.pools.flatMap((pool) => [...pool.leases, ...pool.failed].map((lease) => lease.callPath.split(CALL_PATH_SEPARATOR))));
  return timeline.pools.map((pool) => {
    const verdict = verdictFromCause(pool) ?? withoutCause(pool);
    const top = topCallPath(pool, namer);
    return { pool, verdict, top, leaked: pool.leases.filter(isLeaked).length };
  });
}

/** A pool whose reports carry no cause: fine when no checkout failed or stalled, else unexplained (an older instrumentation). */
function withoutCause(pool: PoolTimeline): PoolVerdict {
  const starved = pool.failed.length > 0 || pool.markers.some((marker) => marker.kind === 'exhausted' || marker.kind === 'stall');
  const cause = starved ? 'unknown' : 'ok';
  return { cause, headline: HEADLINES[cause], source: 'no pool.exhaustion.cause in the file' };
}

/** The cause most reports of the pool named; undefined when none carried one. */
function verdictFromCause(pool: PoolTimeline): PoolVerdict | undefined {
  const counts = new Map<Cause, number>();
  for (const marker of pool.markers) {
    if (isCause(marker.cause)) counts.set(marker.cause, (counts.get(marker.cause) ?? 0) + 1);
  }
  let best: Cause | undefined;
  for (const [cause, count] of counts) if (best === undefined || count > (counts.get(best) ?? 0)) best = cause;
  return best === undefined ? undefined : { cause: best, headline: HEADLINES[best], source: 'pool.exhaustion.cause' };
}

function isCause(value: string | undefined): value is Cause {
  return value === 'leaked_connections' || value === 'slow_queries' || value === 'undersized_pool' || value === 'mixed';
}

/** A lease never given back, or idle when it passed the threshold; a slow query (busy) never is. */
export function isLeaked(lease: Lease): boolean {
  return lease.outcome === 'open at shutdown' || (lease.reportedLeak && lease.leaseState !== 'busy');
}

/** The call path that leaked the most leases; without leaks, the one that held connections longest. */
function topCallPath(pool: PoolTimeline, namer: CallerNamer): TopCallPath | undefined {
  const rows = new Map<string, { leaked: number; leases: number; heldMs: number }>();
  for (const lease of pool.leases) {
    const row = rows.get(lease.callPath) ?? { leaked: 0, leases: 0, heldMs: 0 };
    row.leases++;
    row.heldMs += lease.endMs - (lease.grantedMs ?? lease.endMs);
    if (isLeaked(lease)) row.leaked++;
    rows.set(lease.callPath, row);
  }
  let best: [string, { leaked: number; leases: number; heldMs: number }] | undefined;
  for (const entry of rows) {
    if (best === undefined || entry[1].leaked > best[1].leaked || (entry[1].leaked === best[1].leaked && entry[1].heldMs > best[1].heldMs)) best = entry;
  }
  if (best === undefined) return undefined;
  const [callPath, row] = best;
  return { callPath, caller: namer.callerOf(callPath.split(CALL_PATH_SEPARATOR)), ...row };
}
