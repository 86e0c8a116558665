// A SpanExporter that keeps no spans, only counts, and turns them into the console leak report.
// Register it next to any other exporter (SimpleSpanProcessor is fine: export is a few map
// updates) to get the same report for any application instrumented with pool-leak.
import { SpanStatusCode } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { formatLeakReport } from './leak-report-format';

/** Distinct rows kept per table; the rest are counted under "other". Bounds memory. */
const MAX_ROWS = 100;
/** Stack frames kept per call site (the report shows them all). */
export const STACK_FRAMES_SHOWN = 6;
const CHECKIN_EVENTS = ['pool.checkin.finalizer', 'pool.checkin.loop_tick'] as const;
/** The status message the instrumentation gives leases it ends at tracer provider shutdown. */
const OPEN_AT_SHUTDOWN = 'lease still open at tracer provider shutdown';

export type CheckinEvent = (typeof CHECKIN_EVENTS)[number];

/** Where a connection was checked out: the instrumentation's code.* call site. */
export interface CallSite {
  readonly functionName: string;
  readonly filePath: string | undefined;
  readonly line: number | undefined;
}

/** One leaking call site. */
export interface LeakedCallSite extends CallSite {
  /** Distinct leases: reported by the leak detector, or still held at shutdown, each counted once. */
  leaked: number;
  /** `<library> leak` spans: held past the threshold while the process ran. */
  reportedByThreshold: number;
  /** Still held when the tracer provider shut down. */
  openAtShutdown: number;
  /** Reported by the threshold, then checked in after all (`pool.leak.returned`). */
  returnedLater: number;
  /** First frames of `code.stacktrace`, as captured at checkout. */
  readonly stack: readonly string[];
}

/** Checkins that ran in a GC finalizer or on a loop tick outside the owner's trace. */
export interface MisplacedCheckins {
  readonly event: CheckinEvent;
  readonly takenAt: CallSite;
  /** Top application frame of `pool.checkin.stacktrace`: the code that did the checkin. */
  readonly checkedInBy: string;
  count: number;
}

/** Everything the report shows; a copy, safe to keep. */
export interface LeakReportData {
  readonly leaks: readonly LeakedCallSite[];
  readonly otherLeaks: number;
  readonly checkins: readonly MisplacedCheckins[];
  readonly otherCheckins: number;
  readonly checkouts: number;
  readonly checkedIn: number;
  /** Checkouts that never got a connection, by status message (timeout, pool ended, ...). */
  readonly failedCheckouts: ReadonlyMap<string, number>;
}

export class LeakReportExporter implements SpanExporter {
  private readonly leaks = new Map<string, LeakedCallSite>();
  private otherLeaks = 0;
  private readonly checkins = new Map<string, MisplacedCheckins>();
  private otherCheckins = 0;
  private readonly failures = new Map<string, number>();
  private checkouts = 0;
  private checkedIn = 0;

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    for (const span of spans) {
      if (span.name.endsWith(' leak')) this.recordLeakSpan(span);
      else if (span.name.endsWith(' checkout')) this.recordCheckout(span);
    }
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  async shutdown(): Promise<void> {}

  async forceFlush(): Promise<void> {}

  /** Leaking call sites, most leases first. */
  leakedCallSites(): LeakedCallSite[] {
    return [...this.leaks.values()]
      .map((row) => ({ ...row }))
      .sort((a, b) => b.leaked - a.leaked || b.openAtShutdown - a.openAtShutdown);
  }

  data(): LeakReportData {
    return {
      leaks: this.leakedCallSites(),
      otherLeaks: this.otherLeaks,
      checkins: [...this.checkins.values()].map((row) => ({ ...row })).sort((a, b) => b.count - a.count),
      otherCheckins: this.otherCheckins,
      checkouts: this.checkouts,
      checkedIn: this.checkedIn,
      failedCheckouts: new Map([...this.failures].sort((a, b) => b[1] - a[1])),
    };
  }

  /** The console report; its first line names the function that leaked the most connections. */
  format(): string {
    return formatLeakReport(this.data());
  }

  /** A `<library> leak` span: one per lease that passed the threshold. */
  private recordLeakSpan(span: ReadableSpan): void {
    const row = this.leakRow(span);
    if (row === undefined) return;
    row.leaked++;
    row.reportedByThreshold++;
  }

  private recordCheckout(span: ReadableSpan): void {
    this.checkouts++;
    const events = span.events;
    let leakReported = false;
    for (const event of events) {
      if (event.name === 'pool.leak.suspected') leakReported = true;
      else if (event.name === 'pool.checkin.finalizer' || event.name === 'pool.checkin.loop_tick') {
        this.recordCheckin(event.name, span, event.attributes?.['pool.checkin.stacktrace']);
      }
    }
    const held = span.attributes['pool.held_ms'] !== undefined;
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
    // Its leak span, if it had one, already counted this lease.
    if (!leakReported) row.leaked++;
  }

  private recordCheckin(event: CheckinEvent, span: ReadableSpan, stack: unknown): void {
    const takenAt = callSiteOf(span);
    const checkedInBy = typeof stack === 'string' ? (topApplicationFrame(stack) ?? '<no application frame>') : '<no stack>';
    const key = `${event}\u0000${siteKey(takenAt)}\u0000${checkedInBy}`;
    const row = this.checkins.get(key);
    if (row !== undefined) row.count++;
    else if (this.checkins.size >= MAX_ROWS) this.otherCheckins++;
    else this.checkins.set(key, { event, takenAt, checkedInBy, count: 1 });
  }

  private countFailure(reason: string): void {
    if (this.failures.has(reason) || this.failures.size < MAX_ROWS) this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
    else this.failures.set('other', (this.failures.get('other') ?? 0) + 1);
  }

  /** The row of the span's call site, created on first sight; undefined past the cap. */
  private leakRow(span: ReadableSpan): LeakedCallSite | undefined {
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
        reportedByThreshold: 0,
        openAtShutdown: 0,
        returnedLater: 0,
        stack: typeof stack === 'string' ? stackFrames(stack).slice(0, STACK_FRAMES_SHOWN) : [],
      };
      this.leaks.set(key, row);
    }
    return row;
  }
}

function callSiteOf(span: ReadableSpan): CallSite {
  const { attributes } = span;
  const functionName = attributes['code.function.name'];
  const filePath = attributes['code.file.path'];
  const line = attributes['code.line.number'];
  return {
    functionName: typeof functionName === 'string' ? functionName : '<anonymous>',
    filePath: typeof filePath === 'string' ? filePath : undefined,
    line: typeof line === 'number' ? line : undefined,
  };
}

function siteKey(site: CallSite): string {
  return `${site.functionName}\u0000${site.filePath ?? ''}\u0000${site.line ?? ''}`;
}

function stackFrames(stack: string): string[] {
  return stack
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '));
}

const FRAME_LOCATION = /\(?([^()\s][^()]*):\d+:\d+\)?$/;

/**
 * The first frame with a file of the application's (not Node's own, not a dependency's, not
 * `<anonymous>`), without the leading `at `: who did the checkin.
 */
export function topApplicationFrame(stack: string): string | undefined {
  for (const frame of stackFrames(stack)) {
    const file = FRAME_LOCATION.exec(frame)?.[1];
    if (file === undefined || file.startsWith('node:') || /[\\/]node_modules[\\/]/.test(file)) continue;
    return frame.slice('at '.length);
  }
  return undefined;
}
