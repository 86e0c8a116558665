// The model of the timeline page: per pool (`db.client.connection.pool.name`), its leases on
// connection lanes, its waiters, and its leak / stall / exhausted markers, read from the spans of
// a trace file. Pure data; verdict.ts judges it and render-*.ts draw it.
import {
  ATTR_DB_CLIENT_CONNECTION_MAX,
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_POOL_CALL_PATH,
  ATTR_POOL_HELD_MS,
  ATTR_POOL_HOLDERS,
  ATTR_POOL_HOLDERS_COUNT,
  ATTR_POOL_LEASE_STATE,
  ATTR_POOL_LIBRARY,
  ATTR_POOL_PENDING,
  ATTR_POOL_WAIT_MS,
  ATTR_POOL_EXHAUSTION_CAUSE,
  EVENT_POOL_ACQUIRED,
  EVENT_POOL_EXHAUSTED,
  EVENT_POOL_LEAK_SUSPECTED,
  EVENT_POOL_WAIT_STALLED,
} from 'opentelemetry-instrumentation-pool-leak';
import { OPEN_AT_SHUTDOWN } from '../leak-report-data';
import { assignLanes, maxConcurrency } from './lanes';
import type { TraceAttributes, TraceEvent, TraceSpan } from './trace-span';

/** Span name suffix of the stalled-waiter span (`<library> wait.stalled`). */
const STALL_SPAN_SUFFIX = ' wait.stalled';

export type LeaseOutcome = 'checked in' | 'open at shutdown' | 'never got a connection' | 'failed';

/** One checkout span. */
export interface Lease {
  readonly spanId: string;
  readonly traceId: string;
  /** `pool.call_path`, else `code.function.name (code.file.path:code.line.number)`. */
  readonly callPath: string;
  readonly requestedMs: number;
  /** When the connection was granted; undefined when it never was. */
  readonly grantedMs: number | undefined;
  readonly endMs: number;
  readonly waitMs: number | undefined;
  readonly heldMs: number | undefined;
  readonly outcome: LeaseOutcome;
  readonly statusMessage: string | undefined;
  /** From its leak report, when it passed the threshold: `pool.lease.state` and `db.query.summary`. */
  readonly leaseState: string | undefined;
  readonly lastSummary: string | undefined;
  /** Passed the leak threshold (a leak span or `pool.leak.suspected`). */
  readonly reportedLeak: boolean;
  /** Connection lane; -1 for a checkout that never got a connection. */
  readonly lane: number;
}

export type MarkerKind = 'leak' | 'stall' | 'exhausted';

export interface Marker {
  readonly kind: MarkerKind;
  readonly timeMs: number;
  readonly callPath: string | undefined;
  /** Lane of the lease it is about, when known. */
  readonly lane: number | undefined;
  /** `pool.exhaustion.cause`, where the event or span carried it. */
  readonly cause: string | undefined;
  /** A leak report of a lease busy in a statement: a slow query, never counted as a leak. */
  readonly slowQuery: boolean;
  /** Lines for the hover text. */
  readonly details: readonly string[];
}

export interface PoolTimeline {
  readonly name: string;
  readonly library: string | undefined;
  /** `db.client.connection.max`, once an exhausted event said it. */
  readonly max: number | undefined;
  /** Granted leases, each with its lane. */
  readonly leases: readonly Lease[];
  /** Checkouts that never got a connection. */
  readonly failed: readonly Lease[];
  readonly laneCount: number;
  /** Most leases held at one instant, counted independently of the lanes. */
  readonly maxConcurrency: number;
  readonly markers: readonly Marker[];
}

export interface Timeline {
  readonly startMs: number;
  readonly endMs: number;
  readonly spans: number;
  readonly pools: readonly PoolTimeline[];
}

const UNNAMED_POOL = '(unnamed pool)';

export function buildTimeline(spans: readonly TraceSpan[]): Timeline {
  const byPool = new Map<string, TraceSpan[]>();
  for (const span of spans) {
    if (!isPoolSpan(span)) continue;
    const name = poolNameOf(span.attributes);
    const list = byPool.get(name);
    if (list === undefined) byPool.set(name, [span]);
    else list.push(span);
  }
  const pools = [...byPool].map(([name, poolSpans]) => buildPool(name, poolSpans));
  const times = spans.flatMap((span) => [span.startMs, span.endMs]).filter((time) => time > 0);
  return {
    startMs: times.length === 0 ? 0 : Math.min(...times),
    endMs: times.length === 0 ? 0 : Math.max(...times),
    spans: spans.length,
    pools: pools.sort((a, b) => b.failed.length - a.failed.length || a.name.localeCompare(b.name)),
  };
}

function isPoolSpan(span: TraceSpan): boolean {
  return span.name.endsWith(' checkout') || span.name.endsWith(' leak') || span.name.endsWith(STALL_SPAN_SUFFIX);
}

function buildPool(name: string, spans: readonly TraceSpan[]): PoolTimeline {
  const checkouts = spans.filter((span) => span.name.endsWith(' checkout'));
  // A leak span reports the lease of the checkout span it links to.
  const leakSpans = new Map(spans.filter((span) => span.name.endsWith(' leak')).map((span) => [span.links[0]?.spanId ?? span.spanId, span]));
  const drafts = checkouts.map((span) => leaseOf(span, leakSpans.get(span.spanId)));
  const granted = drafts.filter((lease) => lease.grantedMs !== undefined);
  const intervals = granted.map((lease) => ({ startMs: lease.grantedMs ?? lease.requestedMs, endMs: lease.endMs }));
  const { lanes, count } = assignLanes(intervals);
  const leases = granted.map((lease, index) => ({ ...lease, lane: lanes[index] ?? 0 }));
  const laneOf = new Map(leases.map((lease) => [lease.spanId, lease.lane]));
  let max: number | undefined;
  for (const span of checkouts) {
    for (const event of span.events) {
      const value = event.attributes[ATTR_DB_CLIENT_CONNECTION_MAX];
      if (event.name === EVENT_POOL_EXHAUSTED && typeof value === 'number') max = value;
    }
  }
  const library = spans.map((span) => span.attributes[ATTR_POOL_LIBRARY]).find((value) => typeof value === 'string');
  return {
    name,
    library: typeof library === 'string' ? library : undefined,
    max,
    leases,
    failed: drafts.filter((lease) => lease.grantedMs === undefined),
    laneCount: count,
    maxConcurrency: maxConcurrency(intervals),
    markers: markersOf(spans, checkouts, leakSpans, laneOf).sort((a, b) => a.timeMs - b.timeMs),
  };
}

function leaseOf(span: TraceSpan, leakSpan: TraceSpan | undefined): Lease {
  const { attributes } = span;
  const acquired = span.events.find((event) => event.name === EVENT_POOL_ACQUIRED);
  const leakEvent = span.events.find((event) => event.name === EVENT_POOL_LEAK_SUSPECTED);
  const waitMs = numberOf(attributes[ATTR_POOL_WAIT_MS]);
  const heldMs = numberOf(attributes[ATTR_POOL_HELD_MS]);
  const grantedMs = acquired?.timeMs ?? (waitMs !== undefined ? span.startMs + waitMs : heldMs !== undefined ? span.endMs - heldMs : undefined);
  const leakAttributes = leakEvent?.attributes ?? leakSpan?.attributes ?? {};
  return {
    spanId: span.spanId,
    traceId: span.traceId,
    callPath: callPathOf(attributes),
    requestedMs: span.startMs,
    grantedMs,
    endMs: span.endMs,
    waitMs,
    heldMs,
    outcome: outcomeOf(span, grantedMs),
    statusMessage: span.statusMessage,
    leaseState: stringOf(leakAttributes[ATTR_POOL_LEASE_STATE]),
    lastSummary: stringOf(leakAttributes[ATTR_DB_QUERY_SUMMARY]),
    reportedLeak: leakEvent !== undefined || leakSpan !== undefined,
    lane: -1,
  };
}

function outcomeOf(span: TraceSpan, grantedMs: number | undefined): LeaseOutcome {
  if (!span.error) return 'checked in';
  if (grantedMs === undefined) return 'never got a connection';
  return span.statusMessage === OPEN_AT_SHUTDOWN ? 'open at shutdown' : 'failed';
}

function markersOf(
  spans: readonly TraceSpan[],
  checkouts: readonly TraceSpan[],
  leakSpans: ReadonlyMap<string, TraceSpan>,
  laneOf: ReadonlyMap<string, number>,
): Marker[] {
  const markers: Marker[] = [];
  // One leak marker per lease: its leak span, else the event on its checkout span.
  for (const [checkoutId, span] of leakSpans) {
    markers.push(marker('leak', span.startMs, span.attributes, laneOf.get(checkoutId), leakDetails(span.attributes)));
  }
  // One stall marker per waiter: its stall span and the event on its checkout share the parent.
  const stallSpans = spans.filter((span) => span.name.endsWith(STALL_SPAN_SUFFIX));
  const stalled = new Set(stallSpans.map((span) => `${span.traceId}/${span.parentSpanId ?? ''}`));
  for (const span of stallSpans) markers.push(marker('stall', span.startMs, span.attributes, undefined, stallDetails(span.attributes)));
  for (const span of checkouts) {
    for (const event of span.events) {
      const site = { ...event.attributes, [ATTR_POOL_CALL_PATH]: callPathOf(span.attributes) };
      if (event.name === EVENT_POOL_LEAK_SUSPECTED && !leakSpans.has(span.spanId)) {
        markers.push(marker('leak', event.timeMs, site, laneOf.get(span.spanId), leakDetails(site)));
      } else if (event.name === EVENT_POOL_WAIT_STALLED && !stalled.has(`${span.traceId}/${span.parentSpanId ?? ''}`)) {
        markers.push(marker('stall', event.timeMs, site, undefined, stallDetails(site)));
      } else if (event.name === EVENT_POOL_EXHAUSTED) {
        markers.push(marker('exhausted', event.timeMs, site, undefined, exhaustedDetails(event)));
      }
    }
  }
  return markers;
}

function marker(kind: MarkerKind, timeMs: number, attributes: TraceAttributes, lane: number | undefined, details: string[]): Marker {
  const slowQuery = kind === 'leak' && attributes[ATTR_POOL_LEASE_STATE] === 'busy';
  return { kind, timeMs, callPath: callPathOf(attributes), lane, cause: stringOf(attributes[ATTR_POOL_EXHAUSTION_CAUSE]), slowQuery, details };
}

function leakDetails(attributes: TraceAttributes): string[] {
  const state = stringOf(attributes[ATTR_POOL_LEASE_STATE]);
  const summary = stringOf(attributes[ATTR_DB_QUERY_SUMMARY]);
  const held = formatMs(numberOf(attributes[ATTR_POOL_HELD_MS]));
  return [
    state === 'busy' ? `passed the leak threshold (held ${held}) busy in a statement: a slow query, not a leak` : `leak suspected: held ${held}`,
    state === undefined ? 'lease state not reported' : `lease state ${state}${summary === undefined ? '' : `, last ${summary}`}`,
  ];
}

function stallDetails(attributes: TraceAttributes): string[] {
  return [`waiter stalled: waiting ${formatMs(numberOf(attributes[ATTR_POOL_WAIT_MS]))}`, ...holderLines(attributes)];
}

function exhaustedDetails(event: TraceEvent): string[] {
  const { attributes } = event;
  const pending = numberOf(attributes[ATTR_POOL_PENDING]);
  const max = numberOf(attributes[ATTR_DB_CLIENT_CONNECTION_MAX]);
  return [`pool exhausted: checkout failed${max === undefined ? '' : `, max ${max}`}${pending === undefined ? '' : `, ${pending} waiting`}`, ...holderLines(attributes)];
}

/** The cause and the holders an exhausted or stalled report named (at most 10, longest-held first). */
function holderLines(attributes: TraceAttributes): string[] {
  const cause = stringOf(attributes[ATTR_POOL_EXHAUSTION_CAUSE]);
  const holders = attributes[ATTR_POOL_HOLDERS];
  const list = Array.isArray(holders) ? holders.filter((holder): holder is string => typeof holder === 'string') : [];
  const count = numberOf(attributes[ATTR_POOL_HOLDERS_COUNT]) ?? list.length;
  return [
    ...(cause === undefined ? [] : [`cause: ${cause}`]),
    `holders (${count}):`,
    ...list.map((holder) => `  ${holder}`),
  ];
}

export function callPathOf(attributes: TraceAttributes): string {
  const callPath = attributes[ATTR_POOL_CALL_PATH];
  if (typeof callPath === 'string' && callPath !== '') return callPath;
  const fn = stringOf(attributes['code.function.name']) ?? '<anonymous>';
  const file = stringOf(attributes['code.file.path']);
  const line = numberOf(attributes['code.line.number']);
  return file === undefined ? fn : `${fn} (${file}:${line ?? ''})`;
}

export function poolNameOf(attributes: TraceAttributes): string {
  const name = attributes[ATTR_DB_CLIENT_CONNECTION_POOL_NAME] ?? attributes[ATTR_POOL_LIBRARY];
  return typeof name === 'string' && name !== '' ? name : UNNAMED_POOL;
}

export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '? ms';
  return ms >= 10 ? `${Math.round(ms)} ms` : `${Math.round(ms * 10) / 10} ms`;
}

function numberOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
