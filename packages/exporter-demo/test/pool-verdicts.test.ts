// The per-pool verdicts and the foreign-context list of the leak report, on real SDK spans shaped
// like the instrumentation's (names and attributes of DESIGN.md): exhausted by leaks vs
// undersized, decided from the exported spans alone, holders grouped by `pool.call_path`.
import { SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { ATTR_POOL_CALL_PATH } from 'opentelemetry-instrumentation-pool-leak';
import { parseHolder } from '../src/call-site';
import { LeakReportExporter } from '../src/leak-report-exporter';
import { formatLeakReport } from '../src/leak-report-format';
import { percentile, Reservoir, type PoolReport } from '../src/pool-tally';

const BILLING = '10.0.0.5:5432/billing';
const CATALOG = '10.0.0.5:5432/catalog';
const CARTS = '10.0.0.5:5432/carts';
const SHUTDOWN = 'lease still open at tracer provider shutdown';
const TIMEOUT = 'timeout exceeded when trying to connect';
/** Any fixed instant: span durations are what the verdict reads. */
const T0 = Date.UTC(2025, 0, 1);

interface ExhaustedAt {
  readonly waitedMs: number;
  readonly holders: readonly string[];
  readonly max: number;
  readonly pending: number;
  readonly holdersCount?: number;
  /** The instrumentation's verdict on the event; none from an older instrumentation. */
  readonly cause?: string;
}

function setup() {
  const report = new LeakReportExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: report })] });
  const tracer = provider.getTracer('test');
  /** code.* of the first frame, and `pool.call_path` of it and its `callers` (`fn (file:line)`). */
  const site = (functionName: string, file: string, line: number, ...callers: string[]): Attributes => ({
    'code.function.name': functionName,
    'code.file.path': file,
    'code.line.number': line,
    'code.stacktrace': `    at ${functionName} (${file}:${line}:5)`,
    [ATTR_POOL_CALL_PATH]: [`${functionName} (${file}:${line})`, ...callers].join(' ← '),
  });
  const checkout = (pool: string, attributes: Attributes, build: (span: ReturnType<typeof tracer.startSpan>) => void, durationMs = 5) => {
    const span = tracer.startSpan('pg-pool checkout', {
      attributes: { 'pool.library': 'pg-pool', 'db.client.connection.pool.name': pool, ...attributes },
      startTime: new Date(T0),
    });
    build(span);
    span.end(new Date(T0 + durationMs));
  };
  return {
    report,
    site,
    /** A checkout granted after `waitMs` and checked in; `pendingAhead` when it had to queue. */
    granted(pool: string, at: Attributes, waitMs: number, pendingAhead?: number) {
      const queued = pendingAhead === undefined ? {} : { 'pool.pending_at_request': pendingAhead };
      checkout(pool, { ...at, ...queued, 'pool.wait_ms': waitMs, 'pool.held_ms': 3 }, () => {});
    },
    /** A lease still open at shutdown: a leak of its call site. */
    leaked(pool: string, at: Attributes) {
      checkout(pool, { ...at, 'pool.wait_ms': 0, 'pool.held_ms': 9000 }, (span) => span.setStatus({ code: SpanStatusCode.ERROR, message: SHUTDOWN }));
    },
    /** A checkout that waited `waitedMs` and failed on the exhausted pool. */
    timedOut(pool: string, at: Attributes, exhausted: ExhaustedAt) {
      checkout(
        pool,
        { ...at, 'pool.pending_at_request': exhausted.pending },
        (span) => {
          span.addEvent('pool.exhausted', {
            'pool.holders': [...exhausted.holders],
            'pool.holders.count': exhausted.holdersCount ?? exhausted.holders.length,
            'db.client.connection.max': exhausted.max,
            'pool.pending': exhausted.pending,
            ...(exhausted.cause === undefined ? {} : { 'pool.exhaustion.cause': exhausted.cause }),
          });
          span.setStatus({ code: SpanStatusCode.ERROR, message: TIMEOUT });
        },
        exhausted.waitedMs,
      );
    },
    /** A leased connection used by statements of other traces, one event each. */
    usedFromElsewhere(pool: string, at: Attributes, stacks: readonly string[]) {
      checkout(pool, { ...at, 'pool.wait_ms': 0, 'pool.held_ms': 160 }, (span) => {
        for (const stack of stacks) {
          span.addEvent('pool.use.foreign_context', {
            'pool.use.stacktrace': stack,
            'pool.use.trace_id': '0af7651916cd43dd8448eb211c80319c',
            'pool.use.span_id': 'b7ad6b7169203331',
          });
        }
      });
    },
  };
}

/** A `pool.holders` entry of a lease taken at `at`, as the instrumentation writes it. */
function holder(at: Attributes, heldMs: number): string {
  return `${String(at[ATTR_POOL_CALL_PATH])} held ${heldMs} ms`;
}

/** The same site as an instrumentation without `pool.call_path` reported it. */
function withoutCallPath(at: Attributes): Attributes {
  const { [ATTR_POOL_CALL_PATH]: _callPath, ...rest } = at;
  return rest;
}

function poolNamed(report: LeakReportExporter, name: string): PoolReport {
  const pool = report.data().pools.find((candidate) => candidate.name === name);
  if (pool === undefined) return expect.fail(`no pool ${name} in ${report.data().pools.map((candidate) => candidate.name).join(', ')}`);
  return pool;
}

/** The report with paths relative to /srv, as the demo shows them relative to its working directory. */
function textOf(report: LeakReportExporter): string {
  return formatLeakReport(report.data(), '/srv');
}

function lineOf(report: LeakReportExporter, start: string): string {
  const text = textOf(report);
  const line = text.split('\n').find((candidate) => candidate.trimStart().startsWith(start));
  return line === undefined ? expect.fail(`no line starting with ${start} in\n${text}`) : line.trim();
}

describe('pool verdicts', () => {
  it("follows the instrumentation's pool.exhaustion.cause when the events carry it: the holders only say who", () => {
    const { report, site, leaked, timedOut } = setup();
    const exportInvoice = site('BillingService.exportInvoice', '/srv/app/billing.js', 117, 'handle (/srv/app/http.js:30)');
    const getOrder = site('BillingService.getOrder', '/srv/app/billing.js', 80, 'handle (/srv/app/http.js:29)');
    const holders = [holder(exportInvoice, 4200), holder(exportInvoice, 2500)];
    for (let i = 0; i < 2; i++) leaked(BILLING, exportInvoice);
    // The holders alone would read as leaks; the instrumentation saw them busy in one statement.
    timedOut(BILLING, getOrder, { waitedMs: 1000, holders, max: 2, pending: 1, cause: 'slow_queries' });
    timedOut(BILLING, getOrder, { waitedMs: 1000, holders, max: 2, pending: 1, cause: 'slow_queries' });
    timedOut(BILLING, getOrder, { waitedMs: 1000, holders, max: 2, pending: 1, cause: 'mixed' });
    expect(poolNamed(report, BILLING).verdict).toEqual({ kind: 'slow queries' });
    expect(lineOf(report, `${BILLING}: `)).toMatch(/: EXHAUSTED BY SLOW QUERIES — /);

    const catalog = site('CatalogService.search', '/srv/app/catalog.js', 12, 'handle (/srv/app/http.js:40)');
    timedOut(CATALOG, catalog, { waitedMs: 250, holders: [holder(catalog, 9000), holder(catalog, 9000)], max: 2, pending: 7, cause: 'undersized_pool' });
    expect(poolNamed(report, CATALOG).verdict).toMatchObject({ kind: 'undersized', max: 2 });

    const carts = site('CartService.pay', '/srv/app/carts.js', 20, 'handle (/srv/app/http.js:50)');
    timedOut(CARTS, carts, { waitedMs: 250, holders: [holder(carts, 5000), holder(carts, 4000)], max: 2, pending: 1, cause: 'leaked_connections' });
    expect(poolNamed(report, CARTS).verdict).toMatchObject({ kind: 'leaks', caller: { functionName: 'CartService.pay' } });
  });

  it('calls a pool exhausted by leaks when most holders at its timeouts are leases of a leaking call site that kept them', () => {
    const { report, site, leaked, granted, timedOut } = setup();
    const exportInvoice = site('BillingService.exportInvoice', '/srv/app/billing.js', 117, 'handle (/srv/app/http.js:30)');
    const getOrder = site('BillingService.getOrder', '/srv/app/billing.js', 80, 'handle (/srv/app/http.js:29)');
    for (let i = 0; i < 3; i++) leaked(BILLING, exportInvoice);
    granted(BILLING, getOrder, 0.2);
    const holders = [
      holder(exportInvoice, 4200),
      holder(exportInvoice, 2500),
      holder(site('BillingService.renderReport', '/srv/app/billing.js', 127, 'handle (/srv/app/http.js:31)'), 300),
    ];
    timedOut(BILLING, getOrder, { waitedMs: 1000, holders, max: 3, pending: 1 });
    timedOut(BILLING, getOrder, { waitedMs: 1000, holders, max: 3, pending: 2 });

    const pool = poolNamed(report, BILLING);
    expect(pool.verdict).toEqual({
      kind: 'leaks',
      site: {
        functionName: 'BillingService.exportInvoice',
        filePath: '/srv/app/billing.js',
        line: 117,
        callPath: 'BillingService.exportInvoice (/srv/app/billing.js:117) ← handle (/srv/app/http.js:30)',
      },
      caller: { functionName: 'BillingService.exportInvoice', location: '/srv/app/billing.js:117', through: [] },
      slots: 4,
      holderSlots: 6,
    });
    expect(pool).toMatchObject({ timeouts: 2, checkouts: 6, max: 3, peakPending: 2 });
    expect(lineOf(report, BILLING)).toBe(
      `${BILLING}: EXHAUSTED BY LEAKS — BillingService.exportInvoice leaks connections on call path ` +
        'BillingService.exportInvoice (app/billing.js:117) ← handle (app/http.js:30): its leases were 4 of the 6 holders seen at timeouts (67 %)',
    );
    // The first line of the report is still the leak line.
    expect(textOf(report).split('\n')[0]).toBe('LEAK: BillingService.exportInvoice leaked 3 pooled connections (app/billing.js:117)');
  });

  it('tells two callers of one helper apart: the leaking caller is named, the honest one is not blamed', () => {
    const { report, site, leaked, granted, timedOut } = setup();
    // Both check out through safeConnect: the same code.* (the helper's line), another call path.
    const viaHelper = (caller: string) => site('safeConnect', '/srv/app/db.js', 12, caller, 'handle (/srv/app/http.js:30)');
    const exportInvoice = viaHelper('BillingService.exportInvoice (/srv/app/billing.js:117)');
    const buildStatement = viaHelper('BillingService.buildStatement (/srv/app/billing.js:140)');
    for (let i = 0; i < 3; i++) leaked(BILLING, exportInvoice);
    for (let i = 0; i < 5; i++) granted(BILLING, buildStatement, 0.3);
    // At the timeout: two stuck leaked leases and a slow-but-honest one held through the wait.
    const holders = [holder(exportInvoice, 4200), holder(exportInvoice, 2500), holder(buildStatement, 1900)];
    timedOut(BILLING, site('BillingService.getOrder', '/srv/app/billing.js', 80), { waitedMs: 1000, holders, max: 3, pending: 0 });

    const data = report.data();
    // One leak row, named by the caller, not by the helper every caller shares.
    expect(data.leaks.map((row) => [row.caller.functionName, row.leaked, row.callPath])).toEqual([
      [
        'BillingService.exportInvoice',
        3,
        'safeConnect (/srv/app/db.js:12) ← BillingService.exportInvoice (/srv/app/billing.js:117) ← handle (/srv/app/http.js:30)',
      ],
    ]);
    // Checkouts per call path: the helper's two callers are two rows.
    expect(data.callPaths.map((row) => [row.caller.functionName, row.checkouts, row.checkedIn, row.leaked])).toEqual([
      ['BillingService.exportInvoice', 3, 0, 3],
      ['BillingService.buildStatement', 5, 5, 0],
      ['BillingService.getOrder', 1, 0, 0],
    ]);
    // The slow caller's holder counts against nobody: 2 of the 3 holders were leaked leases.
    expect(poolNamed(report, BILLING).verdict).toMatchObject({ kind: 'leaks', slots: 2, holderSlots: 3 });
    expect(lineOf(report, BILLING)).toBe(
      `${BILLING}: EXHAUSTED BY LEAKS — BillingService.exportInvoice leaks connections on call path ` +
        'safeConnect (app/db.js:12) ← BillingService.exportInvoice (app/billing.js:117) ← handle (app/http.js:30): ' +
        'its leases were 2 of the 3 holders seen at timeouts (67 %)',
    );
    const text = textOf(report);
    expect(text.split('\n')[0]).toBe(
      'LEAK: BillingService.exportInvoice leaked 3 pooled connections (app/billing.js:117, through safeConnect (app/db.js:12))',
    );
    expect(text).toContain(
      '  1. BillingService.exportInvoice — leaked — 3 leases: 0 passed the leak threshold while running, 3 still open at shutdown\n' +
        '     call path safeConnect (app/db.js:12) ← BillingService.exportInvoice (app/billing.js:117) ← handle (app/http.js:30)\n',
    );
    expect(text).toContain(
      '  BillingService.exportInvoice: 3 checkouts — 0 checked in, 3 leaked, longest hold 9000 ms\n' +
        '     safeConnect (app/db.js:12) ← BillingService.exportInvoice (app/billing.js:117) ← handle (app/http.js:30)\n' +
        '  BillingService.buildStatement: 5 checkouts — 5 checked in, 0 leaked, longest hold 3 ms\n' +
        '     safeConnect (app/db.js:12) ← BillingService.buildStatement (app/billing.js:140) ← handle (app/http.js:30)\n',
    );
    expect(text).not.toMatch(/(LEAK|EXHAUSTED BY LEAKS)[^\n]*buildStatement/);
  });

  it('groups by code.* when spans carry no pool.call_path, matching holder entries of the same shape', () => {
    const { report, site, leaked, timedOut } = setup();
    const exportInvoice = withoutCallPath(site('BillingService.exportInvoice', '/srv/app/billing.js', 117));
    for (let i = 0; i < 2; i++) leaked(BILLING, exportInvoice);
    const holders = ['BillingService.exportInvoice (/srv/app/billing.js:117) held 4200 ms', 'BillingService.exportInvoice (/srv/app/billing.js:117) held 2500 ms'];
    timedOut(BILLING, withoutCallPath(site('BillingService.getOrder', '/srv/app/billing.js', 80)), { waitedMs: 1000, holders, max: 2, pending: 0 });

    expect(poolNamed(report, BILLING).verdict).toMatchObject({ kind: 'leaks', slots: 2, holderSlots: 2 });
    const text = textOf(report);
    expect(text.split('\n')[0]).toBe('LEAK: BillingService.exportInvoice leaked 2 pooled connections (app/billing.js:117)');
    expect(text).toContain('  1. BillingService.exportInvoice — leaked — 2 leases: 0 passed the leak threshold while running, 2 still open at shutdown\n     taken at app/billing.js:117\n');
    expect(lineOf(report, BILLING)).toContain('EXHAUSTED BY LEAKS — BillingService.exportInvoice leaks connections on call path BillingService.exportInvoice (app/billing.js:117): ');
  });

  it('calls a pool undersized when its holders keep coming back, with peak demand over pool size, pending and wait percentiles', () => {
    const { report, site, granted, timedOut } = setup();
    const search = site('CatalogService.search', '/srv/app/catalog.js', 40);
    granted(CATALOG, search, 1);
    granted(CATALOG, search, 2);
    // Waits of 10 .. 130 ms for the queued ones; the 16th of a rush had 13 waiters ahead of it.
    for (let ahead = 1; ahead <= 13; ahead++) granted(CATALOG, search, ahead * 10, ahead === 13 ? 13 : ahead - 1);
    const holders = [holder(search, 31), holder(search, 4)];
    timedOut(CATALOG, search, { waitedMs: 250, holders, max: 2, pending: 9 });
    timedOut(CATALOG, search, { waitedMs: 251, holders, max: 2, pending: 8 });

    const pool = poolNamed(report, CATALOG);
    // 2 held + 13 waiting ahead + the request itself.
    expect(pool.verdict).toEqual({ kind: 'undersized', demand: 16, max: 2 });
    expect(pool).toMatchObject({ timeouts: 2, granted: 15, queued: 15, peakPending: 13, waitP50Ms: 60, waitP99Ms: 130 });
    expect(lineOf(report, CATALOG)).toBe(
      `${CATALOG}: UNDERSIZED — peak concurrent demand 16 (held + waiting) for 2 connections = 8.0×; holders came back, none leaked`,
    );
    expect(lineOf(report, 'peak pending 13')).toBe('peak pending 13, wait p50 60 ms / p99 130 ms, 2 timeouts in 17 checkouts, max 2');
    expect(textOf(report).split('\n')[0]).toBe('No leaked connections: every checkout was checked in.');
  });

  it('takes peak demand from pool.exhausted when holders and waiters there outnumber what queued checkouts saw', () => {
    const { report, site, timedOut } = setup();
    const search = site('CatalogService.search', '/srv/app/catalog.js', 40);
    timedOut(CATALOG, search, { waitedMs: 250, holders: [], holdersCount: 4, max: 4, pending: 7 });
    expect(poolNamed(report, CATALOG).verdict).toEqual({ kind: 'undersized', demand: 12, max: 4 });
    expect(lineOf(report, CATALOG)).toContain('peak concurrent demand 12 (held + waiting) for 4 connections = 3.0×');
  });

  it('does not blame a leaking call site for a connection taken during the wait, nor a slow site that never leaked', () => {
    const { report, site, leaked, timedOut } = setup();
    const exportInvoice = site('BillingService.exportInvoice', '/srv/app/billing.js', 117);
    const buildStatement = site('BillingService.buildStatement', '/srv/app/billing.js', 140);
    leaked(BILLING, exportInvoice);
    const holders = [
      // Taken after the failing checkout began to wait: the pool was turning over.
      holder(exportInvoice, 20),
      // Held through the whole wait, but its call site never leaked: slow, not lost.
      holder(buildStatement, 2400),
      holder(buildStatement, 1900),
    ];
    timedOut(BILLING, site('BillingService.getOrder', '/srv/app/billing.js', 80), { waitedMs: 1000, holders, max: 3, pending: 0 });
    expect(poolNamed(report, BILLING).verdict).toEqual({ kind: 'undersized', demand: 4, max: 3 });
  });

  it('keeps pools apart by db.client.connection.pool.name and calls a pool without timeouts OK', () => {
    const { report, site, granted, timedOut } = setup();
    const search = site('CatalogService.search', '/srv/app/catalog.js', 40);
    const view = site('CartService.viewCart', '/srv/app/carts.js', 71);
    granted(CARTS, view, 0.1);
    granted(CARTS, view, 30, 0);
    granted(BILLING, site('BillingService.getOrder', '/srv/app/billing.js', 80), 0.1);
    timedOut(CATALOG, search, { waitedMs: 250, holders: [holder(search, 3)], max: 1, pending: 0 });

    // Pools that timed out first, then by name.
    expect(report.data().pools.map((pool) => [pool.name, pool.verdict.kind, pool.checkouts])).toEqual([
      [CATALOG, 'undersized', 1],
      [BILLING, 'ok', 1],
      [CARTS, 'ok', 2],
    ]);
    expect(lineOf(report, CARTS)).toBe(`${CARTS}: OK — no checkout timed out (1 queued)`);
    expect(lineOf(report, BILLING)).toBe(`${BILLING}: OK — no checkout timed out or queued`);
    expect(poolNamed(report, CATALOG).waitP50Ms).toBeUndefined();
    expect(textOf(report)).toContain('peak pending 0, no wait measured, 1 timeout in 1 checkout, max 1');
  });
});

describe('holder verdicts per call path', () => {
  it('says leaked (idle) for holders that sat on their connection and slow query (busy) for holders waiting on a statement', () => {
    const { report, site, timedOut } = setup();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: report })] });
    const tracer = provider.getTracer('test');
    const exporting = site('BillingService.exportInvoice', '/srv/app/billing.js', 117, 'handle (/srv/app/http.js:30)');
    const totals = site('CartService.cartTotals', '/srv/app/carts.js', 80, 'handle (/srv/app/http.js:33)');
    /** A `pg-pool leak` span as the instrumentation exports it, with the holder's lease state. */
    const leakSpan = (at: Attributes, state: string, summary: string) =>
      tracer
        .startSpan('pg-pool leak', {
          attributes: {
            ...at,
            'db.client.connection.pool.name': BILLING,
            'pool.held_ms': 1600,
            'pool.lease.state': state,
            'pool.lease.idle_ms': state === 'busy' ? 0 : 1500,
            'pool.lease.statements': 1,
            'db.query.summary': summary,
          },
        })
        .end();
    leakSpan(totals, 'busy', 'SELECT carts');
    leakSpan(totals, 'busy', 'SELECT carts');
    leakSpan(exporting, 'idle', 'SELECT invoices');
    // The busy holder is named at the timeout too, but it is no leak: the pool verdict blames only the idle one.
    timedOut(BILLING, site('BillingService.getOrder', '/srv/app/billing.js', 90), {
      waitedMs: 1000,
      holders: [holder(exporting, 1700), holder(exporting, 1650), holder(totals, 1600)],
      max: 3,
      pending: 1,
    });

    const rows = report.data().leaks;
    expect(rows.map((row) => [row.caller.functionName, row.verdict, row.lastSummary])).toEqual([
      ['BillingService.exportInvoice', 'leaked (idle)', 'SELECT invoices'],
      ['CartService.cartTotals', 'slow query (busy)', 'SELECT carts'],
    ]);
    const text = textOf(report);
    expect(text.split('\n')[0]).toBe('LEAK: BillingService.exportInvoice leaked 1 pooled connection (app/billing.js:117)');
    expect(text).toContain('  1. BillingService.exportInvoice — leaked (idle), last SELECT invoices — 1 lease: 1 passed the leak threshold while running');
    expect(text).toContain(
      '  2. CartService.cartTotals — slow query (busy), last SELECT carts — 2 leases, 0 leaked, 2 slow queries: 2 passed the leak threshold while running',
    );
    // Had the busy call path counted as leaking, all 3 holder slots would be the leaks'.
    expect(poolNamed(report, BILLING).verdict).toMatchObject({ kind: 'leaks', slots: 2, holderSlots: 3 });
  });
});

describe('slow queries are never leaks', () => {
  it('counts a lease busy past the threshold that came back as a slow query, and one still held at shutdown as leaked', () => {
    const { report, site } = setup();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: report })] });
    const tracer = provider.getTracer('test');
    const totals = site('CartService.cartTotals', '/srv/app/carts.js', 80, 'handle (/srv/app/http.js:33)');
    const exporting = site('BillingService.exportInvoice', '/srv/app/billing.js', 117, 'handle (/srv/app/http.js:30)');
    const state = (lease: string) => ({ 'pool.lease.state': lease, 'pool.lease.statements': 1 });
    /** The leak span, then the checkout span with its `pool.leak.suspected` event, as the instrumentation exports them. */
    const passedThreshold = (at: Attributes, lease: string, end: 'checked in' | 'open at shutdown') => {
      tracer.startSpan('pg-pool leak', { attributes: { ...at, ...state(lease), 'db.client.connection.pool.name': CARTS, 'pool.held_ms': 1600 } }).end();
      const span = tracer.startSpan('pg-pool checkout', {
        attributes: { ...at, 'db.client.connection.pool.name': CARTS, 'pool.wait_ms': 0, 'pool.held_ms': 2300 },
      });
      span.addEvent('pool.leak.suspected', { 'pool.held_ms': 1600, ...state(lease) });
      if (end === 'checked in') span.addEvent('pool.leak.returned', { 'pool.held_ms': 2300 });
      else span.setStatus({ code: SpanStatusCode.ERROR, message: SHUTDOWN });
      span.end();
    };
    passedThreshold(totals, 'busy', 'checked in');
    passedThreshold(exporting, 'idle', 'open at shutdown');
    passedThreshold(exporting, 'busy', 'open at shutdown');

    const data = report.data();
    expect(data.leaks.map((row) => [row.caller.functionName, row.leaked, row.slowQueries, row.returnedLater])).toEqual([
      ['BillingService.exportInvoice', 2, 0, 0],
      ['CartService.cartTotals', 0, 1, 1],
    ]);
    expect(data.callPaths.map((row) => [row.caller.functionName, row.checkouts, row.leaked])).toEqual([
      ['BillingService.exportInvoice', 2, 2],
      ['CartService.cartTotals', 1, 0],
    ]);
    const text = textOf(report);
    expect(text.split('\n')[0]).toBe('LEAK: BillingService.exportInvoice leaked 2 pooled connections (app/billing.js:117)');
    expect(text).toContain('  CartService.cartTotals: 1 checkout — 1 checked in, 0 leaked, longest hold 2300 ms\n');
    expect(text).toContain('  2. CartService.cartTotals — slow query (busy) — 1 lease, 0 leaked, 1 slow query: 1 passed the leak threshold while running');
  });
});

describe('foreign-context uses', () => {
  it('groups them by pool, the call site that took the lease, and the first application frame of the statement', () => {
    const { report, site, usedFromElsewhere } = setup();
    const beginCheckout = site('CartService.beginCheckout', '/srv/app/carts.js', 50);
    const viewCart =
      '    at Client.query (/srv/node_modules/pg/lib/client.js:520:3)\n' +
      '    at CartService.viewCart (/srv/app/carts.js:71:31)\n' +
      '    at Object.handle (/srv/app/http.js:30:9)';
    usedFromElsewhere(CARTS, beginCheckout, [viewCart, viewCart]);
    usedFromElsewhere(CARTS, beginCheckout, [viewCart]);
    usedFromElsewhere(CARTS, beginCheckout, ['    at Cron.tick (/srv/app/cron.js:9:1)']);

    expect(report.data().foreignUses.map(({ pool, takenAt, usedBy, count }) => [pool, takenAt.functionName, usedBy, count])).toEqual([
      [CARTS, 'CartService.beginCheckout', 'CartService.viewCart (/srv/app/carts.js:71:31)', 3],
      [CARTS, 'CartService.beginCheckout', 'Cron.tick (/srv/app/cron.js:9:1)', 1],
    ]);
    const text = textOf(report);
    expect(text).toContain(
      `  3× on ${CARTS}: taken by CartService.beginCheckout (app/carts.js:50)\n     used by CartService.viewCart (app/carts.js:71:31) in another request`,
    );
    // The pool's line counts them too, and its verdict is about size only.
    expect(lineOf(report, CARTS)).toBe(`${CARTS}: OK — no checkout timed out or queued`);
    expect(text).toContain('0 timeouts in 3 checkouts, 4 used from another request (below)');
  });

  it('keeps the leases of two callers of one helper apart, each shown with its call path', () => {
    const { report, site, usedFromElsewhere } = setup();
    const viaHelper = (caller: string) => site('openTransaction', '/srv/app/db.js', 8, caller);
    const statement = '    at CartService.viewCart (/srv/app/carts.js:71:31)';
    usedFromElsewhere(CARTS, viaHelper('CartService.beginCheckout (/srv/app/carts.js:50)'), [statement, statement]);
    usedFromElsewhere(CARTS, viaHelper('CartService.reserve (/srv/app/carts.js:90)'), [statement]);

    expect(report.data().foreignUses.map(({ takenAt, count }) => [takenAt.functionName, takenAt.callPath, count])).toEqual([
      ['openTransaction', 'openTransaction (/srv/app/db.js:8) ← CartService.beginCheckout (/srv/app/carts.js:50)', 2],
      ['openTransaction', 'openTransaction (/srv/app/db.js:8) ← CartService.reserve (/srv/app/carts.js:90)', 1],
    ]);
    expect(textOf(report)).toContain(`  2× on ${CARTS}: taken by openTransaction (app/db.js:8) ← CartService.beginCheckout (app/carts.js:50)\n`);
  });
});

describe('helpers', () => {
  it('parseHolder reads the documented pool.holders shapes, and the one without a call site', () => {
    const callPath = 'safeConnect (lib/my store (v2).js:69) ← set (lib/store.js:22) ← handlePost (server.js:40)';
    const site = { functionName: 'safeConnect', filePath: 'lib/my store (v2).js', line: 69, callPath };
    expect(parseHolder(`${callPath} held 4200 ms`)).toEqual({ site, heldMs: 4200 });
    // With the lease state after it.
    expect(parseHolder(`${callPath} held 4200 ms — idle 3100 ms in transaction, last SELECT invoices`)).toEqual({ site, heldMs: 4200 });
    // One frame, as instrumentations without pool.call_path wrote it.
    expect(parseHolder('BillingService.exportInvoice (/srv/my app (v2)/billing.js:117) held 4200 ms')).toEqual({
      site: {
        functionName: 'BillingService.exportInvoice',
        filePath: '/srv/my app (v2)/billing.js',
        line: 117,
        callPath: 'BillingService.exportInvoice (/srv/my app (v2)/billing.js:117)',
      },
      heldMs: 4200,
    });
    expect(parseHolder('<unknown call site: stack capture off> held 12 ms')).toEqual({ site: undefined, heldMs: 12 });
    expect(parseHolder('something else')).toBeUndefined();
  });

  it('percentile is nearest-rank, and the reservoir keeps at most its capacity', () => {
    const values = Array.from({ length: 100 }, (_, index) => index + 1);
    expect(percentile(values, 0.5)).toBe(50);
    expect(percentile(values, 0.99)).toBe(99);
    expect(percentile([], 0.5)).toBeUndefined();
    const reservoir = new Reservoir(8);
    for (let value = 0; value < 1000; value++) reservoir.add(value);
    const kept = reservoir.sorted();
    expect(kept).toHaveLength(8);
    expect(new Set(kept).size).toBe(8);
  });
});
