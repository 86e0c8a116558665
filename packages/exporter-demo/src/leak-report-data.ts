// What the leak report shows, as values: the rows of each table and the verdict of a leaking call
// path. Shared by the exporter that fills it and the formatter that prints it, so that neither
// imports the other.
import { EVENT_POOL_CHECKIN_FINALIZER, EVENT_POOL_CHECKIN_LOOP_TICK } from 'opentelemetry-instrumentation-pool-leak';
import type { Caller } from './call-path';
import type { CallPathCheckouts } from './call-path-tally';
import type { CallSite } from './call-site';
import type { PoolReport } from './pool-tally';

export const CHECKIN_EVENTS = [EVENT_POOL_CHECKIN_FINALIZER, EVENT_POOL_CHECKIN_LOOP_TICK] as const;

export type CheckinEvent = (typeof CHECKIN_EVENTS)[number];

/** The status message the instrumentation gives leases it ends at tracer provider shutdown. */
export const OPEN_AT_SHUTDOWN = 'lease still open at tracer provider shutdown';

/** What the report counts of one leaking call path. */
export interface LeakTally extends CallSite {
  /**
   * Distinct leaked leases, each counted once: still held at shutdown, or idle (not in a
   * statement) when they passed the threshold. A slow query is never one.
   */
  leaked: number;
  /** Leases busy in a statement when they passed the threshold and not held at shutdown: slow queries. */
  slowQueries: number;
  /** `<library> leak` spans: held past the threshold while the process ran. */
  reportedByThreshold: number;
  /** Still held when the tracer provider shut down. */
  openAtShutdown: number;
  /** Reported by the threshold, then checked in after all (`pool.leak.returned`). */
  returnedLater: number;
  /** First frames of `code.stacktrace`, as captured at checkout. */
  readonly stack: readonly string[];
  /** Leak spans by `pool.lease.state`: what the holder was doing when it passed the threshold. */
  busy: number;
  idle: number;
  idleInTransaction: number;
  /** `db.query.summary` of the last statement, from the latest leak span that had one. */
  lastSummary: string | undefined;
}

/**
 * Per call path: `leaked (idle)` when its holders sat on their connections doing nothing (the
 * leak to fix in the code), `slow query (busy)` when they were waiting on a statement (a
 * database problem: the connection comes back when the query ends).
 */
export type HolderVerdict = 'leaked' | 'leaked (idle)' | 'leaked (idle in transaction)' | 'slow query (busy)';

/**
 * The verdict of a leaking call path from the states its leak spans reported; plain `leaked` when
 * none did (leases seen only at shutdown, or an instrumentation without lease states).
 */
export function holderVerdict(row: Pick<LeakTally, 'busy' | 'idle' | 'idleInTransaction'>): HolderVerdict {
  if (row.busy + row.idle + row.idleInTransaction === 0) return 'leaked';
  if (row.busy > row.idle + row.idleInTransaction) return 'slow query (busy)';
  return row.idleInTransaction > row.idle ? 'leaked (idle in transaction)' : 'leaked (idle)';
}

/** One leaking call path (one row per `pool.call_path`: a helper's callers are rows of their own). */
export interface LeakedCallSite extends LeakTally {
  /** The frame that tells this call path from the others seen: the caller to fix. */
  readonly caller: Caller;
  readonly verdict: HolderVerdict;
}

/** Checkouts of one call path, with its leaked leases and the frame it is named by. */
export interface CallPathRow extends CallPathCheckouts {
  /** Its leases counted in the leak table (0 for an honest path). */
  readonly leaked: number;
  readonly caller: Caller;
}

/** Checkins that ran in a GC finalizer or on a loop tick outside the owner's trace. */
export interface MisplacedCheckins {
  readonly event: CheckinEvent;
  readonly takenAt: CallSite;
  /** Top application frame of `pool.checkin.stacktrace`: the code that did the checkin. */
  readonly checkedInBy: string;
  count: number;
}

/**
 * Statements that ran on a leased connection while another trace was active
 * (`pool.use.foreign_context`): the connection of one request used by another.
 */
export interface ForeignUses {
  /** `db.client.connection.pool.name` of the checkout span. */
  readonly pool: string;
  /** The call site that took the lease (code.* of the checkout span). */
  readonly takenAt: CallSite;
  /** Top application frame of `pool.use.stacktrace`: the statement of the other request. */
  readonly usedBy: string;
  count: number;
}

/** Everything the report shows; a copy, safe to keep. */
export interface LeakReportData {
  readonly leaks: readonly LeakedCallSite[];
  readonly otherLeaks: number;
  /** One per pool, with its verdict; pools that timed out first. */
  readonly pools: readonly PoolReport[];
  readonly foreignUses: readonly ForeignUses[];
  readonly otherForeignUses: number;
  readonly checkins: readonly MisplacedCheckins[];
  readonly otherCheckins: number;
  /** Checkouts per call path: leaking ones first, then the busiest. */
  readonly callPaths: readonly CallPathRow[];
  /** Checkouts of call paths past the table's cap. */
  readonly otherCallPathCheckouts: number;
  readonly checkouts: number;
  readonly checkedIn: number;
  /** Checkouts that never got a connection, by status message (timeout, pool ended, ...). */
  readonly failedCheckouts: ReadonlyMap<string, number>;
}
