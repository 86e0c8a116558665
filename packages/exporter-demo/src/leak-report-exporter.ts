// A SpanExporter that keeps no spans, only counts, and turns them into the console leak report:
// leaking call paths, a verdict per pool (exhausted by leaks, undersized, OK), connections used
// by another request, misplaced checkins, and checkouts per call path. Every table is keyed by
// `pool.call_path`, so two callers of one helper are two rows. Register it next to any other
// exporter (SimpleSpanProcessor is fine: export is a few map updates) to get the same report for
// any application instrumented with pool-leak.
import { SpanStatusCode } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { ReportSpan } from './report-span';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_POOL_CHECKIN_STACKTRACE,
  ATTR_POOL_HELD_MS,
  ATTR_POOL_LEASE_STATE,
  ATTR_POOL_USE_STACKTRACE,
  EVENT_POOL_CHECKIN_FINALIZER,
  EVENT_POOL_CHECKIN_LOOP_TICK,
  EVENT_POOL_LEAK_SUSPECTED,
  EVENT_POOL_USE_FOREIGN_CONTEXT,
} from 'opentelemetry-instrumentation-pool-leak';
import { CALL_PATH_SEPARATOR, CallerNamer } from './call-path';
import { CallPathTally } from './call-path-tally';
import {
  callPathFramesOf,
  callSiteOf,
  siteKey,
  stackFrames,
  topApplicationFrame,
  type NameCaller,
} from './call-site';
import {
  holderVerdict,
  OPEN_AT_SHUTDOWN,
  type CallPathRow,
  type CheckinEvent,
  type ForeignUses,
  type LeakedCallSite,
  type LeakReportData,
  type LeakTally,
  type MisplacedCheckins,
} from './leak-report-data';
import { formatLeakReport } from './leak-report-format';
import { PoolTallies } from './pool-tally';

export { topApplicationFrame, type CallSite } from './call-site';
export type { Caller } from './call-path';
export {
  holderVerdict,
  type CallPathRow,
  type CheckinEvent,
  type ForeignUses,
  type HolderVerdict,
  type LeakedCallSite,
  type LeakReportData,
  type MisplacedCheckins,
} from './leak-report-data';

/** Distinct rows kept per table; the rest are counted under "other". Bounds memory. */
const MAX_ROWS = 100;
/** Stack frames kept per call site (the report shows them all). */
export const STACK_FRAMES_SHOWN = 6;

export class LeakReportExporter implements SpanExporter {
  private readonly leaks = new Map<string, LeakTally>();
  private otherLeaks = 0;
  private readonly checkins = new Map<string, MisplacedCheckins>();
  private otherCheckins = 0;
  private readonly foreignUses = new Map<string, ForeignUses>();
  private otherForeignUses = 0;
  private readonly pools = new PoolTallies();
  private readonly callPaths = new CallPathTally(MAX_ROWS);
  private readonly failures = new Map<string, number>();
  private checkouts = 0;
  private checkedIn = 0;

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.record(spans);
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  /** Counts spans read back from elsewhere (a trace file), as export does for live ones. */
  record(spans: Iterable<ReportSpan>): void {
    for (const span of spans) {
      if (span.name.endsWith(' leak')) this.recordLeakSpan(span);
      else if (span.name.endsWith(' checkout')) this.recordCheckout(span);
    }
  }

  async shutdown(): Promise<void> {}

  async forceFlush(): Promise<void> {}

  /** Leaking call paths, most leases first. */
  leakedCallSites(): LeakedCallSite[] {
    return this.leakRows(this.callerNamer());
  }

  data(): LeakReportData {
    const nameCaller = this.callerNamer();
    const callPaths = this.callPaths
      .entries()
      .map(([key, row]): CallPathRow => ({ ...row, leaked: this.leaks.get(key)?.leaked ?? 0, caller: nameCaller(row.site) }))
      .sort((a, b) => b.leaked - a.leaked || b.checkouts - a.checkouts);
    return {
      leaks: this.leakRows(nameCaller),
      otherLeaks: this.otherLeaks,
      pools: this.pools.reports((key) => this.isLeaking(key), nameCaller),
      foreignUses: [...this.foreignUses.values()].map((row) => ({ ...row })).sort((a, b) => b.count - a.count),
      otherForeignUses: this.otherForeignUses,
      checkins: [...this.checkins.values()].map((row) => ({ ...row })).sort((a, b) => b.count - a.count),
      otherCheckins: this.otherCheckins,
      callPaths,
      otherCallPathCheckouts: this.callPaths.other,
      checkouts: this.checkouts,
      checkedIn: this.checkedIn,
      failedCheckouts: new Map([...this.failures].sort((a, b) => b[1] - a[1])),
    };
  }

  /** The console report; its first line names the caller that leaked the most connections. */
  format(): string {
    return formatLeakReport(this.data());
  }

  /** A `<library> leak` span: one per lease that passed the threshold, with the holder's state. */
  private recordLeakSpan(span: ReportSpan): void {
    const row = this.leakRow(span);
    if (row === undefined) return;
    row.reportedByThreshold++;
    const summary = span.attributes[ATTR_DB_QUERY_SUMMARY];
    if (typeof summary === 'string') row.lastSummary = summary;
    const state = span.attributes[ATTR_POOL_LEASE_STATE];
    // Busy in a statement: a slow query, unless it is still held at shutdown (recordCheckout).
    if (state === 'busy') {
      row.busy++;
      row.slowQueries++;
      return;
    }
    row.leaked++;
    if (state === 'idle_in_transaction') row.idleInTransaction++;
    else if (state === 'idle') row.idle++;
  }

  /** A call path whose holders kept connections while idle: a leak, not a slow query. */
  private isLeaking(key: string): boolean {
    const row = this.leaks.get(key);
    return row !== undefined && row.leaked > 0 && holderVerdict(row) !== 'slow query (busy)';
  }

  private leakRows(nameCaller: NameCaller): LeakedCallSite[] {
    return [...this.leaks.values()]
      .map((row) => ({ ...row, caller: nameCaller(row), verdict: holderVerdict(row) }))
      .sort((a, b) => b.leaked - a.leaked || b.openAtShutdown - a.openAtShutdown || b.slowQueries - a.slowQueries);
  }

  /**
   * Names a call site against every call path seen at checkouts and every leaking one (a leak
   * span comes before its checkout span, which ends only at checkin or shutdown).
   */
  private callerNamer(): NameCaller {
    const keys = new Set([...this.callPaths.keys(), ...this.leaks.keys()]);
    const namer = new CallerNamer([...keys].map((key) => key.split(CALL_PATH_SEPARATOR)));
    return (site) => namer.callerOf(callPathFramesOf(site));
  }

  private recordCheckout(span: ReportSpan): void {
    this.checkouts++;
    this.pools.record(span);
    this.callPaths.record(span);
    const events = span.events;
    let leakReported = false;
    let reportedBusy = false;
    for (const event of events) {
      if (event.name === EVENT_POOL_LEAK_SUSPECTED) {
        leakReported = true;
        reportedBusy = event.attributes?.[ATTR_POOL_LEASE_STATE] === 'busy';
      } else if (event.name === EVENT_POOL_CHECKIN_FINALIZER || event.name === EVENT_POOL_CHECKIN_LOOP_TICK) {
        this.recordCheckin(event.name, span, event.attributes?.[ATTR_POOL_CHECKIN_STACKTRACE]);
      } else if (event.name === EVENT_POOL_USE_FOREIGN_CONTEXT) {
        this.recordForeignUse(span, event.attributes?.[ATTR_POOL_USE_STACKTRACE]);
      }
    }
    const held = span.attributes[ATTR_POOL_HELD_MS] !== undefined;
    if (span.status.code !== SpanStatusCode.ERROR) {
      if (held) this.checkedIn++;
      if (leakReported) {
        const row = this.leakRow(span);
        if (row !== undefined) row.returnedLater++;
      }
      return;
    }
    // A checkout that never got a connection has no pool.held_ms.
    if (!held) {
      this.countFailure(span.status.message ?? 'unknown error');
      return;
    }
    if (span.status.message !== OPEN_AT_SHUTDOWN) return;
    const row = this.leakRow(span);
    if (row === undefined) return;
    row.openAtShutdown++;
    // An idle leak span already counted this lease; a busy one took it for a slow query.
    if (!leakReported) row.leaked++;
    else if (reportedBusy) {
      row.leaked++;
      row.slowQueries = Math.max(0, row.slowQueries - 1);
    }
  }

  private recordCheckin(event: CheckinEvent, span: ReportSpan, stack: unknown): void {
    const takenAt = callSiteOf(span);
    const checkedInBy = describeFrame(stack);
    const key = `${event}\u0000${siteKey(takenAt)}\u0000${checkedInBy}`;
    const row = this.checkins.get(key);
    if (row !== undefined) row.count++;
    else if (this.checkins.size >= MAX_ROWS) this.otherCheckins++;
    else this.checkins.set(key, { event, takenAt, checkedInBy, count: 1 });
  }

  private recordForeignUse(span: ReportSpan, stack: unknown): void {
    const pool = span.attributes[ATTR_DB_CLIENT_CONNECTION_POOL_NAME];
    const poolName = typeof pool === 'string' ? pool : '(unnamed pool)';
    const takenAt = callSiteOf(span);
    const usedBy = describeFrame(stack);
    const key = `${poolName}\u0000${siteKey(takenAt)}\u0000${usedBy}`;
    const row = this.foreignUses.get(key);
    if (row !== undefined) row.count++;
    else if (this.foreignUses.size >= MAX_ROWS) this.otherForeignUses++;
    else this.foreignUses.set(key, { pool: poolName, takenAt, usedBy, count: 1 });
  }

  private countFailure(reason: string): void {
    if (this.failures.has(reason) || this.failures.size < MAX_ROWS) this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
    else this.failures.set('other', (this.failures.get('other') ?? 0) + 1);
  }

  /** The row of the span's call path, created on first sight; undefined past the cap. */
  private leakRow(span: ReportSpan): LeakTally | undefined {
    const site = callSiteOf(span);
    const key = siteKey(site);
    let row = this.leaks.get(key);
    if (row === undefined) {
      if (this.leaks.size >= MAX_ROWS) {
        this.otherLeaks++;
        return undefined;
      }
      const stack = span.attributes['code.stacktrace'];
      row = {
        ...site,
        leaked: 0,
        slowQueries: 0,
        reportedByThreshold: 0,
        openAtShutdown: 0,
        returnedLater: 0,
        busy: 0,
        idle: 0,
        idleInTransaction: 0,
        lastSummary: undefined,
        stack: typeof stack === 'string' ? stackFrames(stack).slice(0, STACK_FRAMES_SHOWN) : [],
      };
      this.leaks.set(key, row);
    }
    return row;
  }
}

/** The application frame at the top of an event's stack attribute, or why there is none. */
function describeFrame(stack: unknown): string {
  return typeof stack === 'string' ? (topApplicationFrame(stack) ?? '<no application frame>') : '<no stack>';
}
