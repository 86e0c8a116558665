// The per-pool verdicts and the foreign-context list of the leak report, on real SDK spans shaped
// like the instrumentation's (names and attributes of DESIGN.md): exhausted by leaks vs
// undersized, decided from the exported spans alone.
import { SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
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
}

function setup() {
  const report = new LeakReportExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: report })] });
  const tracer = provider.getTracer('test');
  const site = (functionName: string, file: string, line: number): Attributes => ({
    'code.function.name': functionName,
    'code.file.path': file,
    'code.line.number': line,
    'code.stacktrace': `    at ${functionName} (${file}:${line}:5)`,
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
  it('calls a pool exhausted by leaks when most holders at its timeouts are leases of a leaking call site that kept them', () => {
    const { report, site, leaked, granted, timedOut } = setup();
    const exportInvoice = site('BillingService.exportInvoice', '/srv/app/billing.js', 117);
    for (let i = 0; i < 3; i++) leaked(BILLING, exportInvoice);
    granted(BILLING, site('BillingService.getOrder', '/srv/app/billing.js', 80), 0.2);
    const holders = [
      'BillingService.exportInvoice (/srv/app/billing.js:117) held 4200 ms',
      'BillingService.exportInvoice (/srv/app/billing.js:117) held 2500 ms',
      'BillingService.renderReport (/srv/app/billing.js:127) held 300 ms',
    ];
    timedOut(BILLING, site('BillingService.getOrder', '/srv/app/billing.js', 80), { waitedMs: 1000, holders, max: 3, pending: 1 });
    timedOut(BILLING, site('BillingService.getOrder', '/srv/app/billing.js', 80), { waitedMs: 1000, holders, max: 3, pending: 2 });

    const pool = poolNamed(report, BILLING);
    expect(pool.verdict).toEqual({
      kind: 'leaks',
      site: { functionName: 'BillingService.exportInvoice', filePath: '/srv/app/billing.js', line: 117 },
      slots: 4,
      holderSlots: 6,
    });
    expect(pool).toMatchObject({ timeouts: 2, checkouts: 6, max: 3, peakPending: 2 });
    expect(lineOf(report, BILLING)).toBe(
      `${BILLING}: EXHAUSTED BY LEAKS — BillingService.exportInvoice (app/billing.js:117) leaks connections: ` +
        'its leases were 4 of the 6 holders seen at timeouts (67 %)',
    );
    // The first line of the report is still the leak line.
    expect(textOf(report).split('\n')[0]).toBe('LEAK: BillingService.exportInvoice leaked 3 pooled connections (app/billing.js:117)');
  });

  it('calls a pool undersized when its holders keep coming back, with peak demand over pool size, pending and wait percentiles', () => {
    const { report, site, granted, timedOut } = setup();
    const search = site('CatalogService.search', '/srv/app/catalog.js', 40);
    granted(CATALOG, search, 1);
    granted(CATALOG, search, 2);
    // Waits of 10 .. 130 ms for the queued ones; the 16th of a rush had 13 waiters ahead of it.
    for (let ahead = 1; ahead <= 13; ahead++) granted(CATALOG, search, ahead * 10, ahead === 13 ? 13 : ahead - 1);
    const holders = ['CatalogService.search (/srv/app/catalog.js:40) held 31 ms', 'CatalogService.search (/srv/app/catalog.js:40) held 4 ms'];
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
    leaked(BILLING, site('BillingService.exportInvoice', '/srv/app/billing.js', 117));
    const holders = [
      // Taken after the failing checkout began to wait: the pool was turning over.
      'BillingService.exportInvoice (/srv/app/billing.js:117) held 20 ms',
      // Held through the whole wait, but its call site never leaked: slow, not lost.
      'BillingService.buildStatement (/srv/app/billing.js:140) held 2400 ms',
      'BillingService.buildStatement (/srv/app/billing.js:140) held 1900 ms',
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
    timedOut(CATALOG, search, { waitedMs: 250, holders: ['CatalogService.search (/srv/app/catalog.js:40) held 3 ms'], max: 1, pending: 0 });

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
});

describe('helpers', () => {
  it('parseHolder reads the documented pool.holders shape, and the one without a call site', () => {
    expect(parseHolder('BillingService.exportInvoice (/srv/my app (v2)/billing.js:117) held 4200 ms')).toEqual({
      site: { functionName: 'BillingService.exportInvoice', filePath: '/srv/my app (v2)/billing.js', line: 117 },
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
