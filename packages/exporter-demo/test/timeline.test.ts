// The timeline page's parse → model → verdict → render chain on real SDK spans shaped like the
// instrumentation's (names from its public entry): lanes never exceed what was held at once, one
// marker per leaked lease and per stalled waiter, the same model from OTLP/JSON and from Jaeger's
// export, the verdict from `pool.exhaustion.cause` when present, and every string escaped.
import { SpanStatusCode, context, trace, type Attributes, type Span } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import fc from 'fast-check';
import {
  ATTR_DB_CLIENT_CONNECTION_MAX,
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_POOL_CALL_PATH,
  ATTR_POOL_HELD_MS,
  ATTR_POOL_HOLDERS,
  ATTR_POOL_HOLDERS_COUNT,
  ATTR_POOL_LEASE_STATE,
  ATTR_POOL_PENDING,
  ATTR_POOL_EXHAUSTION_CAUSE,
  ATTR_POOL_WAIT_MS,
  EVENT_POOL_ACQUIRED,
  EVENT_POOL_EXHAUSTED,
  EVENT_POOL_LEAK_SUSPECTED,
  EVENT_POOL_WAIT_STALLED,
} from 'opentelemetry-instrumentation-pool-leak';
import { describe, expect, it } from 'vitest';
import { OPEN_AT_SHUTDOWN } from '../src/leak-report-data';
import { toOtlpTraceRequest } from '../src/otlp-json';
import { assignLanes, HANDOVER_MS, maxConcurrency, type Interval } from '../src/timeline/lanes';
import { buildTimeline, type Timeline } from '../src/timeline/pool-timeline';
import { parseTraces } from '../src/timeline/read-traces';
import { renderPage } from '../src/timeline/render-html';
import { TraceFileError, type TraceSpan } from '../src/timeline/trace-span';
import { summarizePools } from '../src/timeline/verdict';
import { toJaegerExport } from './support/jaeger-export';

const BILLING = '10.0.0.5:5432/billing';
const T0 = Date.UTC(2026, 0, 1, 12);
const EXPORT_INVOICE = 'safeConnect (app/db.js:12) ← BillingService.exportInvoice (app/billing.js:117) ← handle (app/http.js:30)';
const GET_ORDER = 'BillingService.getOrder (app/billing.js:90) ← handle (app/http.js:26)';
/** The honest caller of the same helper: the call paths fork after safeConnect, so each is named by its caller. */
const BUILD_STATEMENT = 'safeConnect (app/db.js:12) ← BillingService.buildStatement (app/billing.js:125) ← handle (app/http.js:31)';

interface Scenario {
  /** `pool.exhaustion.cause` on the exhausted event and the stall span, or none (an older instrumentation). */
  readonly cause?: string;
  readonly callPath?: string;
}

/** A billing pool of 3: two leases of exportInvoice that never come back, honest getOrders, one stalled and one failed waiter. */
function finishedSpans({ cause, callPath = EXPORT_INVOICE }: Scenario = {}): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] }).getTracer('test');
  const at = (ms: number) => new Date(T0 + ms);
  const causeAttribute: Attributes = cause === undefined ? {} : { [ATTR_POOL_EXHAUSTION_CAUSE]: cause };
  const checkout = (path: string, requested: number, parent: Span, build: (span: Span) => void, end: number) => {
    const span = tracer.startSpan(
      'pg-pool checkout',
      { startTime: at(requested), attributes: { [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: BILLING, 'pool.library': 'pg-pool', [ATTR_POOL_CALL_PATH]: path } },
      trace.setSpan(context.active(), parent),
    );
    build(span);
    span.end(at(end));
    return span;
  };
  const granted = (path: string, requested: number, waited: number, end: number, extra: (span: Span) => void = () => {}) => {
    const request = tracer.startSpan('GET /x', { startTime: at(requested) });
    const span = checkout(path, requested, request, (s) => {
      s.setAttribute(ATTR_POOL_WAIT_MS, waited);
      s.addEvent(EVENT_POOL_ACQUIRED, at(requested + waited));
      extra(s);
      s.setAttribute(ATTR_POOL_HELD_MS, end - requested - waited);
    }, end);
    request.end(at(end));
    return { span, request };
  };
  const leaked = (requested: number) => {
    const leakAttributes = { [ATTR_POOL_HELD_MS]: 1500, [ATTR_POOL_LEASE_STATE]: 'idle', [ATTR_DB_QUERY_SUMMARY]: 'SELECT invoices' };
    const { span, request } = granted(callPath, requested, 0, 5000, (s) => {
      s.addEvent(EVENT_POOL_LEAK_SUSPECTED, leakAttributes, at(requested + 1500));
      s.setStatus({ code: SpanStatusCode.ERROR, message: OPEN_AT_SHUTDOWN });
    });
    // The leak span: child of the request, linked to its checkout, as the instrumentation emits it.
    tracer
      .startSpan(
        'pg-pool leak',
        { startTime: at(requested + 1500), attributes: { [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: BILLING, [ATTR_POOL_CALL_PATH]: callPath, ...leakAttributes }, links: [{ context: span.spanContext() }] },
        trace.setSpan(context.active(), request),
      )
      .end(at(requested + 1500));
  };
  leaked(0);
  leaked(100);
  granted(GET_ORDER, 10, 0, 20);
  // Handed over: this one is granted a fraction of a millisecond before the previous one's span ends.
  granted(GET_ORDER, 19.7, 0, 40);
  granted(GET_ORDER, 200, 0, 230);
  granted(BUILD_STATEMENT, 300, 0, 900);
  const holders = [`${callPath} held 1900 ms — idle 1890 ms`, `${callPath} held 1800 ms — idle 1790 ms`, `${GET_ORDER} held 5 ms — busy 5 ms`];
  // A waiter that stalls (its span starts at failure; the stall span and event report it once).
  const waiting = tracer.startSpan('GET /y', { startTime: at(1900) });
  tracer
    .startSpan(
      'pg-pool wait.stalled',
      { startTime: at(2400), attributes: { [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: BILLING, [ATTR_POOL_CALL_PATH]: GET_ORDER, [ATTR_POOL_WAIT_MS]: 500, [ATTR_POOL_HOLDERS]: holders, ...causeAttribute } },
      trace.setSpan(context.active(), waiting),
    )
    .end(at(2400));
  checkout(GET_ORDER, 1900, waiting, (s) => {
    s.addEvent(EVENT_POOL_WAIT_STALLED, { [ATTR_POOL_WAIT_MS]: 500, ...causeAttribute }, at(2400));
    s.addEvent(EVENT_POOL_EXHAUSTED, { [ATTR_POOL_HOLDERS]: holders, [ATTR_POOL_HOLDERS_COUNT]: 3, [ATTR_DB_CLIENT_CONNECTION_MAX]: 3, [ATTR_POOL_PENDING]: 0, ...causeAttribute }, at(2900));
    s.setStatus({ code: SpanStatusCode.ERROR, message: 'timeout exceeded when trying to connect' });
  }, 2900);
  waiting.end(at(2900));
  return memory.getFinishedSpans();
}

/** The scenario's spans as the demo's trace file holds them, read back. */
function scenario(options: Scenario = {}): TraceSpan[] {
  return parseTraces(JSON.stringify(toOtlpTraceRequest(finishedSpans(options))));
}

function only<T>(items: readonly T[]): T {
  expect(items).toHaveLength(1);
  return items[0] as T;
}

/** What the page shows of a timeline, with times to the millisecond (Jaeger keeps microseconds). */
function shape(timeline: Timeline) {
  return timeline.pools.map((pool) => ({
    name: pool.name,
    lanes: pool.laneCount,
    leases: pool.leases.map((lease) => [lease.callPath, lease.lane, lease.outcome, lease.leaseState, Math.round(lease.grantedMs ?? 0) - T0, Math.round(lease.endMs) - T0]),
    failed: pool.failed.map((lease) => [lease.callPath, lease.statusMessage]),
    markers: pool.markers.map((marker) => [marker.kind, Math.round(marker.timeMs) - T0, marker.lane, marker.cause, marker.details]),
  }));
}

describe('connection lanes', () => {
  it('use exactly as many lanes as leases held at once, and never put two overlapping leases in one lane', () => {
    const interval = fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 800 })).map(([start, length]): Interval => ({ startMs: start, endMs: start + length }));
    fc.assert(
      fc.property(fc.array(interval, { maxLength: 60 }), (intervals) => {
        const { lanes, count } = assignLanes(intervals);
        expect(count).toBe(maxConcurrency(intervals));
        intervals.forEach((a, i) => {
          intervals.forEach((b, j) => {
            if (i >= j || lanes[i] !== lanes[j]) return;
            const overlap = Math.min(a.endMs, b.endMs) - Math.max(a.startMs, b.startMs);
            expect(overlap, `${JSON.stringify(a)} and ${JSON.stringify(b)} share lane ${lanes[i]}`).toBeLessThanOrEqual(HANDOVER_MS);
          });
        });
      }),
    );
  });
});

describe('the timeline model', () => {
  it('puts leases on lanes by grant time, one leak marker per leaked lease and one stall marker per stalled waiter', () => {
    const timeline = buildTimeline(scenario());
    const pool = only(timeline.pools);
    expect(pool.name).toBe(BILLING);
    // Two leaks held throughout, and one honest lease at a time beside them (the second getOrder took over the first's connection).
    expect(pool.laneCount).toBe(3);
    expect(pool.maxConcurrency).toBe(3);
    expect(pool.max).toBe(3);
    expect(pool.leases.filter((lease) => lease.callPath === EXPORT_INVOICE).map((lease) => [lease.outcome, lease.leaseState, lease.lastSummary])).toEqual([
      ['open at shutdown', 'idle', 'SELECT invoices'],
      ['open at shutdown', 'idle', 'SELECT invoices'],
    ]);
    expect(pool.leases.filter((lease) => lease.callPath === GET_ORDER).map((lease) => lease.lane)).toEqual([1, 1, 2]);
    expect(pool.failed.map((lease) => lease.outcome)).toEqual(['never got a connection']);
    const kinds = pool.markers.map((marker) => marker.kind);
    expect(kinds.filter((kind) => kind === 'leak')).toHaveLength(2);
    expect(kinds.filter((kind) => kind === 'stall')).toHaveLength(1);
    expect(kinds.filter((kind) => kind === 'exhausted')).toHaveLength(1);
    // Leak markers sit on their lease's lane.
    expect(pool.markers.filter((marker) => marker.kind === 'leak').map((marker) => marker.lane)).toEqual([0, 1]);
  });

  it('reads the same timeline from OTLP/JSON lines and from the Jaeger JSON export of the same spans', () => {
    const spans = finishedSpans();
    const request = toOtlpTraceRequest(spans);
    const fromOtlp = buildTimeline(parseTraces(JSON.stringify(request)));
    const fromJaeger = buildTimeline(parseTraces(JSON.stringify(toJaegerExport([request])), 'export.json'));
    expect(shape(fromJaeger)).toEqual(shape(fromOtlp));
    // A file of several lines (one per export batch) reads as one.
    const twoLines = `${JSON.stringify(toOtlpTraceRequest(spans.slice(0, 5)))}\n${JSON.stringify(toOtlpTraceRequest(spans.slice(5)))}\n`;
    expect(shape(buildTimeline(parseTraces(twoLines)))).toEqual(shape(fromOtlp));
  });

  it('says what is wrong with a file it cannot read', () => {
    expect(() => parseTraces('  \n')).toThrow(TraceFileError);
    expect(() => parseTraces('{"resourceSpans":[]}\nnot json\n', 'traces.jsonl')).toThrow(/traces\.jsonl, line 2: not JSON/);
    expect(() => parseTraces('{"data":{}}', 'export.json')).toThrow(/no "data" array/);
  });
});

describe('verdicts', () => {
  it("uses the instrumentation's pool.exhaustion.cause; without it, a starved pool's cause is unknown, never guessed", () => {
    const before = scenario();
    const [uncaused] = summarizePools(buildTimeline(before));
    expect(uncaused?.verdict).toEqual({ cause: 'unknown', headline: 'CHECKOUTS FAILED — cause not recorded', source: 'no pool.exhaustion.cause in the file' });
    expect(uncaused?.top).toMatchObject({ callPath: EXPORT_INVOICE, leaked: 2, leases: 2 });
    expect(uncaused?.top?.caller.functionName).toBe('BillingService.exportInvoice');
    expect(uncaused?.leaked).toBe(2);

    for (const cause of ['leaked_connections', 'slow_queries', 'undersized_pool', 'mixed'] as const) {
      const after = scenario({ cause });
      const [caused] = summarizePools(buildTimeline(after));
      expect(caused?.verdict).toMatchObject({ cause, source: 'pool.exhaustion.cause' });
    }
  });
});

describe('the page', () => {
  it('escapes every string from the trace file and loads nothing from the network', () => {
    const hostile = `<script>alert("x")</script> & 'q' (app/<b>.js:1) ← handle (app/http.js:2)`;
    const spans = scenario({ callPath: hostile });
    const timeline = buildTimeline(spans);
    const html = renderPage({ source: 'traces "<1>".jsonl', timeline, summaries: summarizePools(timeline) });
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<b>.js');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;');
    expect(html).toContain('traces &quot;&lt;1&gt;&quot;.jsonl');
    // Our one inline script, no external resource of any kind, and a policy that forbids them.
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).not.toMatch(/\s(src|href)=|url\(|@import/);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"`);
  });
});
