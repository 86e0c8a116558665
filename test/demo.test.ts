// `npm run demo` end to end, as a child process in short mode: its own PostgreSQL, the leaky
// service, load until the pool is exhausted, the two incidents beside it (an undersized catalog
// pool, a cart page borrowing another request's connection), OTLP/HTTP protobuf to a loopback
// receiver, the OTLP/JSON file, and the console report with its per-pool verdicts. The leak hides
// behind a helper (safeConnect) that an honest caller uses too: the report must name the leaking
// caller by its call path. Runs the BUILT demo (`npm run build` first).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ATTR_POOL_CALL_PATH, EVENT_POOL_ACQUIRED, EVENT_POOL_EXHAUSTED } from 'opentelemetry-instrumentation-pool-leak';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPEN_AT_SHUTDOWN } from '../packages/exporter-demo/src/leak-report-data';
import { HANDOVER_MS } from '../packages/exporter-demo/src/timeline/lanes';
import { parseTraces } from '../packages/exporter-demo/src/timeline/read-traces';
import { launchChromium, skipWithoutChromium } from './support/chromium';
import { REPO_ROOT, runNode, type Ended } from './support/node-process';
import { spansOfRequest, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver';

const DEMO = 'packages/exporter-demo/build/main.js';
const SERVICE_TS = 'packages/exporter-demo/src/service.ts';
const CONNECT_TS = 'packages/exporter-demo/src/connect.ts';
/** Bounds the child; the test's own timeout is above it, so a hang fails with the child's output. */
const RUN_TIMEOUT_MS = 90_000;
const LEAKING_FUNCTION = 'BillingService.exportInvoice';
const HONEST_FUNCTION = 'BillingService.buildStatement';
const SLOW_QUERY_FUNCTION = 'CartService.cartTotals';
const HELPER_FUNCTION = 'safeConnect';
/** The catalog pool's size in the demo (incidents.ts): its verdict names demand over this. */
const CATALOG_POOL_MAX = 2;
/** Pool sizes of a --short run (cli.ts, incidents.ts), by database. */
const SHORT_POOL_MAX: Record<string, number> = { postgres: 3, catalog: CATALOG_POOL_MAX, carts: 4 };
const SKIP_BROWSER = skipWithoutChromium();
/** A pool name: `server.address:server.port/db.namespace`, one database per pool. */
const poolName = (database: string) => String.raw`127\.0\.0\.1:\d+/${database}`;
/** OTLP span kinds (api SpanKind + 1). */
const OTLP_KIND_SERVER = 2;
const OTLP_STATUS_ERROR = 2;

/** 1-based number of the first line of `file` that contains `text`, after the first that contains `after`. */
function sourceLine(file: string, after: string, text: string): number {
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((line) => line.includes(after));
  const index = lines.findIndex((line, at) => at > start && line.includes(text));
  if (start < 0 || index < 0) throw new Error(`no "${text}" after "${after}" in ${file}`);
  return index + 1;
}

/** `pool.call_path` frames, as the demo (run from the repository root) writes them. */
const HELPER_FRAME = `${HELPER_FUNCTION} (${CONNECT_TS}:${sourceLine(CONNECT_TS, 'export async function safeConnect', 'pool.connect()')})`;
const LEAKING_FRAME = `${LEAKING_FUNCTION} (${SERVICE_TS}:${sourceLine(SERVICE_TS, 'async exportInvoice(', 'safeConnect(')})`;
const HONEST_FRAME = `${HONEST_FUNCTION} (${SERVICE_TS}:${sourceLine(SERVICE_TS, 'async buildStatement(', 'safeConnect(')})`;
/** The first two frames of the leaking and the honest call paths: the helper, then its caller. */
const LEAKING_PATH = `${HELPER_FRAME} ← ${LEAKING_FRAME}`;
const HONEST_PATH = `${HELPER_FRAME} ← ${HONEST_FRAME}`;

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The built demo from the repository root; the demo starts its own PostgreSQL. */
function runDemo(args: readonly string[], env: Record<string, string> = {}): Promise<Ended> {
  return runNode(['--enable-source-maps', DEMO, ...args], { timeoutMs: RUN_TIMEOUT_MS, env });
}

/** Every line of the trace file, each parsed as one OTLP/JSON ExportTraceServiceRequest. */
function readTraceFile(path: string, run: Ended): ReceivedSpan[] {
  const lines = readFileSync(path, 'utf8').split('\n').filter((line) => line.trim() !== '');
  expect(lines.length, `${run.context}the trace file is empty`).toBeGreaterThan(0);
  return lines.flatMap((line, index) => {
    let request: unknown;
    try {
      request = JSON.parse(line);
    } catch (error) {
      return expect.fail(`${run.context}line ${index + 1} of the trace file is not JSON: ${String(error)}`);
    }
    expect(Object.keys(request as object), `${run.context}line ${index + 1}`).toEqual(['resourceSpans']);
    expect(Array.isArray((request as { resourceSpans: unknown }).resourceSpans), `${run.context}line ${index + 1}`).toBe(true);
    return spansOfRequest(request as Parameters<typeof spansOfRequest>[0], true);
  });
}

function named(spans: readonly ReceivedSpan[], name: string): ReceivedSpan[] {
  return spans.filter((span) => span.name === name);
}

/** The report line that starts (after indentation) with `pattern`, and the line below it. */
function reportLines(run: Ended, pattern: string): [string, string] {
  const lines = run.stdout.split('\n');
  const index = lines.findIndex((line) => new RegExp(`^\\s*${pattern}`).test(line));
  expect(index, `${run.context}no report line matches /${pattern}/`).toBeGreaterThanOrEqual(0);
  return [lines[index] ?? '', lines[index + 1] ?? ''];
}

/** `peak pending N, wait p50 X ms / p99 Y ms, N timeouts in N checkouts`, as numbers. */
function poolFacts(line: string, run: Ended): { peakPending: number; p50: number; p99: number; timeouts: number; checkouts: number } {
  const match = /^\s+peak pending (\d+), wait p50 ([\d.]+) ms \/ p99 ([\d.]+) ms, (\d+) timeouts? in (\d+) checkouts?/.exec(line);
  expect(match, `${run.context}not a pool facts line: ${line}`).not.toBeNull();
  const [, peakPending, p50, p99, timeouts, checkouts] = (match ?? []).map(Number);
  return { peakPending: peakPending ?? NaN, p50: p50 ?? NaN, p99: p99 ?? NaN, timeouts: timeouts ?? NaN, checkouts: checkouts ?? NaN };
}

describe('npm run demo --short', { timeout: RUN_TIMEOUT_MS + 20_000 }, () => {
  let receiver: OtlpReceiver;
  let outputDir: string;
  let run: Ended;
  let traceFile: string;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    outputDir = mkdtempSync(join(tmpdir(), 'pool-leak-demo-test-'));
    traceFile = join(outputDir, 'nested', 'traces.jsonl');
    run = await runDemo(['--short', '--output', traceFile], { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint });
  }, RUN_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    await receiver?.close();
    if (outputDir !== undefined) rmSync(outputDir, { recursive: true, force: true });
  });

  it('exits 0, and the first line of the report names the leaking caller, through the helper', () => {
    expect(run.code, run.context).toBe(0);
    const firstLine = run.stdout.split('\n')[0] ?? '';
    const [, place] = /^[^(]*\((.*)\)$/.exec(LEAKING_FRAME) ?? [];
    expect(firstLine, run.context).toMatch(
      new RegExp(`^LEAK: ${escape(LEAKING_FUNCTION)} leaked \\d+ pooled connections \\(${escape(`${place}, through ${HELPER_FRAME}`)}\\)$`),
    );
  });

  it('shows one row per caller of the helper, the leaking one with its leases, the honest one with none', () => {
    const leakingRow = new RegExp(
      `^  ${escape(LEAKING_FUNCTION)}: (\\d+) checkouts? — [^\\n]*?(\\d+) leaked[^\\n]*\\n     ${escape(LEAKING_PATH)} ← `,
      'm',
    ).exec(run.stdout);
    expect(leakingRow, run.context).not.toBeNull();
    expect(Number(leakingRow?.[2]), run.context).toBeGreaterThan(0);
    const honestRow = new RegExp(
      `^  ${escape(HONEST_FUNCTION)}: (\\d+) checkouts? — (\\d+) checked in, (?:\\d+ never got a connection, )?0 leaked[^\\n]*\\n     ${escape(HONEST_PATH)} ← `,
      'm',
    ).exec(run.stdout);
    expect(honestRow, run.context).not.toBeNull();
    expect(Number(honestRow?.[1]), run.context).toBeGreaterThan(0);
    // The leak table has one row, by its call path; the honest caller is named nowhere as a leak.
    expect(run.stdout, run.context).toMatch(
      new RegExp(`^  1\\. ${escape(LEAKING_FUNCTION)} — leaked \\(idle\\), last SELECT invoices — \\d+ leases?: [^\\n]*\\n     call path ${escape(LEAKING_PATH)} ← `, 'm'),
    );
    expect(run.stdout, run.context).not.toMatch(new RegExp(`(LEAK:|EXHAUSTED BY LEAKS|^\\s+\\d+\\. )[^\\n]*${escape(HONEST_FUNCTION)}`, 'm'));
  });

  it('reports finalizer and loop-tick checkins with the code that checked in', () => {
    expect(run.stdout, run.context).toMatch(/pool\.checkin\.finalizer \d+×: taken by BillingService\.renderReport/);
    expect(run.stdout, run.context).toMatch(/pool\.checkin\.finalizer[^\n]*\n\s+checked in by releaseAbandonedCursor/);
    expect(run.stdout, run.context).toMatch(/pool\.checkin\.loop_tick \d+×: taken by BillingService\.recordAudit/);
    expect(run.stdout, run.context).toMatch(/pool\.checkin\.loop_tick[^\n]*\n\s+checked in by BillingService\.flushAuditQueue/);
    // The healthy routes check in: one call path still holds connections at shutdown. (On a
    // loaded machine an honest hold can pass the threshold; it then shows as "came back later".)
    const rows = [...run.stdout.matchAll(/^ {2}\d+\. (\S+) — [^\n]*, (\d+) still open at shutdown(, \d+ came back later)?$/gm)];
    expect(rows.map((row) => row[1]), run.context).toContain(LEAKING_FUNCTION);
    for (const [line, caller, open, cameBack] of rows) {
      // The slow cart totals query passes the threshold on purpose, and comes back.
      if (caller === SLOW_QUERY_FUNCTION) continue;
      if (caller !== LEAKING_FUNCTION) expect([open, cameBack === undefined], `${run.context}${line}`).toEqual(['0', false]);
    }
    // Leak or slow query: the lease state of the leak spans tells them apart.
    expect(run.stdout, run.context).toMatch(
      /^ {2}\d+\. CartService\.cartTotals — slow query \(busy\), last SELECT carts — 1 lease, 0 leaked, 1 slow query: 1 passed the leak threshold while running, 0 still open at shutdown, 1 came back later$/m,
    );
    expect(run.stdout, run.context).toContain(`OTLP traces:`);
    expect(run.stdout, run.context).toContain(`accepted by ${receiver.endpoint}/v1/traces`);
  });

  it('judges the leaky pool exhausted by leaks and names the leaking function', () => {
    const [verdict, facts] = reportLines(run, `${poolName('postgres')}: `);
    expect(verdict, run.context).toMatch(
      new RegExp(`: EXHAUSTED BY LEAKS — ${escape(LEAKING_FUNCTION)} leaks connections on call path ${escape(LEAKING_PATH)} ← [^:]+:\\d+\\)(?: ← [^:]+:\\d+\\))*: `),
    );
    const share = /its leases were (\d+) of the (\d+) holders seen at timeouts \((\d+) %\)$/.exec(verdict);
    expect(share, `${run.context}${verdict}`).not.toBeNull();
    // "Mostly": at least half of the holders named at the timeouts were its leaked leases.
    expect(Number(share?.[1]) * 2, run.context).toBeGreaterThanOrEqual(Number(share?.[2]));
    const { timeouts, peakPending } = poolFacts(facts, run);
    expect(timeouts, run.context).toBeGreaterThan(0);
    expect(peakPending, run.context).toBeGreaterThan(0);
  });

  it('judges the catalog pool undersized, with the ratio of peak concurrent demand to its size', () => {
    const [verdict, facts] = reportLines(run, `${poolName('catalog')}: `);
    const undersized = new RegExp(
      `: UNDERSIZED — peak concurrent demand (\\d+) \\(held \\+ waiting\\) for ${CATALOG_POOL_MAX} connections = ([\\d.]+)×; holders came back, none leaked$`,
    ).exec(verdict);
    expect(undersized, `${run.context}${verdict}`).not.toBeNull();
    const demand = Number(undersized?.[1]);
    expect(demand, run.context).toBeGreaterThan(CATALOG_POOL_MAX);
    // One decimal below 10×, whole numbers above.
    expect(Number(undersized?.[2]), run.context).toBeCloseTo(demand / CATALOG_POOL_MAX, 0);
    const { timeouts, peakPending, p50, p99 } = poolFacts(facts, run);
    expect(timeouts, run.context).toBeGreaterThan(0);
    // Peak demand is at most the held connections, the waiters and the request itself.
    expect(peakPending, run.context).toBeGreaterThan(0);
    expect(demand, run.context).toBeLessThanOrEqual(CATALOG_POOL_MAX + peakPending + 1);
    expect(p99, run.context).toBeGreaterThanOrEqual(p50);
    expect(p99, run.context).toBeGreaterThan(0);
    // Honest load: nothing of the catalog is among the leaking call sites.
    expect(run.stdout, run.context).not.toMatch(/^\s+\d+\. CatalogService/m);
  });

  it("lists the cart page's statements on the checkout's connection with both call sites", () => {
    const use = new RegExp(
      String.raw`^  (\d+)× on ${poolName('carts')}: taken by CartService\.beginCheckout \(packages/exporter-demo/src/carts\.ts:\d+\)( ← [^\n]+)?\n` +
        String.raw`\s+used by CartService\.viewCart \(packages/exporter-demo/src/carts\.ts:\d+:\d+\) in another request$`,
      'm',
    ).exec(run.stdout);
    expect(use, run.context).not.toBeNull();
    expect(Number(use?.[1]), run.context).toBeGreaterThan(0);
    // The carts pool is big enough: its verdict is about size only, and it counts the uses.
    const [verdict, facts] = reportLines(run, `${poolName('carts')}: `);
    expect(verdict, run.context).toMatch(/: OK — no checkout timed out/);
    expect(facts, run.context).toMatch(/, \d+ used from another request \(below\)$/);
  });

  it('writes an OTLP/JSON file, one request per line, with leak spans of the leaking function', () => {
    const spans = readTraceFile(traceFile, run);
    for (const span of spans) {
      expect(span.traceId, run.context).toMatch(/^[0-9a-f]{32}$/);
      expect(span.spanId, run.context).toMatch(/^[0-9a-f]{16}$/);
    }
    // The slow cart totals query passes the threshold too, busy in its statement: a leak span, no
    // leak. (On a loaded machine an honest statement can pass it as well: busy too.)
    const busy = named(spans, 'pg-pool leak').filter((span) => span.attributes['pool.lease.state'] === 'busy');
    const slow = busy.filter((span) => String(span.attributes[ATTR_POOL_CALL_PATH]).startsWith(`${SLOW_QUERY_FUNCTION} (`));
    expect(slow.map((span) => span.attributes['db.query.summary']), run.context).toEqual(['SELECT carts']);
    const leaks = named(spans, 'pg-pool leak').filter((span) => !busy.includes(span));
    expect(leaks.length, run.context).toBeGreaterThan(0);
    const checkouts = named(spans, 'pg-pool checkout');
    const servers = new Map(spans.filter((span) => span.kind === OTLP_KIND_SERVER).map((span) => [span.spanId, span]));
    for (const leak of leaks) {
      // code.* is the helper's line; the call path names the caller.
      expect(leak.attributes['code.function.name'], run.context).toBe(HELPER_FUNCTION);
      expect(String(leak.attributes[ATTR_POOL_CALL_PATH]), run.context).toMatch(new RegExp(`^${escape(LEAKING_PATH)} ← `));
      expect(String(leak.attributes['code.stacktrace']), run.context).toContain(LEAKING_FUNCTION);
      // Linked to its checkout span, and a child of the request that took the connection.
      const checkout = checkouts.find((span) => span.spanId === leak.links[0]?.spanId);
      expect(checkout?.attributes[ATTR_POOL_CALL_PATH], run.context).toBe(leak.attributes[ATTR_POOL_CALL_PATH]);
      expect(servers.get(leak.parentSpanId ?? '')?.name, run.context).toBe('GET /invoices/:id/export');
      // Idle with the connection in its pocket, after its one statement: the leak, not a slow query.
      expect(leak.attributes['pool.lease.state'], run.context).toBe('idle');
      expect(leak.attributes['pool.lease.statements'], run.context).toBe(1);
      expect(leak.attributes['db.query.summary'], run.context).toBe('SELECT invoices');
    }
    // The honest caller's checkouts have the helper's code.* too, and their own call path.
    const statements = checkouts.filter((span) => servers.get(span.parentSpanId ?? '')?.name === 'GET /statements/:id');
    expect(statements.length, run.context).toBeGreaterThan(0);
    for (const span of statements) {
      expect(span.attributes['code.function.name'], run.context).toBe(HELPER_FUNCTION);
      expect(String(span.attributes[ATTR_POOL_CALL_PATH]), run.context).toMatch(new RegExp(`^${escape(HONEST_PATH)} ← `));
    }
    // Every checkout has its request's server span as parent.
    expect(checkouts.filter((span) => !servers.has(span.parentSpanId ?? '')).map((span) => span.name), run.context).toEqual([]);
    // The pool ran dry: checkouts failed without ever holding a connection.
    const failed = checkouts.filter((span) => span.status.code === OTLP_STATUS_ERROR && span.attributes['pool.held_ms'] === undefined);
    expect(failed.length, run.context).toBeGreaterThan(0);
    // Mostly pool timeouts; on a loaded machine a new connection's own connect timeout may be among them.
    expect(failed.map((span) => span.status.message), run.context).toContain('timeout exceeded when trying to connect');
    // The file and the OTLP endpoint got the same spans.
    expect(new Set(spans.map((span) => span.spanId)), run.context).toEqual(new Set(receiver.spans().map((span) => span.spanId)));
  });

  it('records the incidents on the spans: catalog holders at pool.exhausted, cart views linked to the checkout they borrowed', () => {
    const spans = readTraceFile(traceFile, run);
    const checkouts = named(spans, 'pg-pool checkout');
    const ofPool = (database: string) =>
      checkouts.filter((span) => String(span.attributes['db.client.connection.pool.name']).endsWith(`/${database}`));
    // Incident (a): the catalog's failed checkouts name their holders, all catalog searches.
    const exhausted = ofPool('catalog').flatMap((span) => span.events.filter((event) => event.name === 'pool.exhausted'));
    expect(exhausted.length, run.context).toBeGreaterThan(0);
    for (const event of exhausted) {
      expect(event.attributes['db.client.connection.max'], run.context).toBe(CATALOG_POOL_MAX);
      const holders = event.attributes['pool.holders'] as string[];
      for (const holder of holders) {
        expect(holder, run.context).toMatch(/^CatalogService\.search \(packages\/exporter-demo\/src\/catalog\.ts:\d+\)( ← [^\n]+)? held \d+ ms( — .+)?$/);
      }
    }
    expect(ofPool('catalog').some((span) => typeof span.attributes['pool.pending_at_request'] === 'number'), run.context).toBe(true);
    // Incident (b): the checkout's span has the foreign-context event naming the view's trace,
    // and the view's request span links back to the checkout span.
    const borrowed = ofPool('carts').filter((span) => span.events.some((event) => event.name === 'pool.use.foreign_context'));
    expect(borrowed.length, run.context).toBeGreaterThan(0);
    const views = new Map(spans.filter((span) => span.name === 'GET /carts/:id').map((span) => [span.spanId, span]));
    for (const checkout of borrowed) {
      expect(checkout.attributes['code.function.name'], run.context).toBe('CartService.beginCheckout');
      for (const event of checkout.events.filter((candidate) => candidate.name === 'pool.use.foreign_context')) {
        expect(event.attributes['pool.use.trace_id'], run.context).not.toBe(checkout.traceId);
        expect(String(event.attributes['pool.use.stacktrace']), run.context).toContain('CartService.viewCart');
        const view = views.get(String(event.attributes['pool.use.span_id']));
        expect(view?.traceId, run.context).toBe(event.attributes['pool.use.trace_id']);
        expect(view?.links, run.context).toContainEqual({ traceId: checkout.traceId, spanId: checkout.spanId });
      }
    }
  });

  it('announces, counts on its progress bar and sums up the same number of requests', () => {
    const announced = /^\[demo\] (\d+) requests in about /m.exec(run.stderr);
    expect(announced, run.context).not.toBeNull();
    const total = Number(announced?.[1]);
    const bars = [...run.stderr.matchAll(/\] (\d+)\/(\d+) requests \|/g)];
    expect(bars.length, run.context).toBeGreaterThan(0);
    for (const bar of bars) expect(Number(bar[2]), run.context).toBe(total);
    const last = bars.at(-1);
    expect(Number(last?.[1]), `${run.context}the bar ends short of its total`).toBe(total);
    expect(run.stdout, run.context).toContain(`  requests: ${total} sent, all that were planned, in `);
    const parts = [/^ {2}billing: (\d+) requests/m, /^ {2}catalog rushes: (\d+) searches/m, /^ {2}cart checkouts and views: (\d+) requests/m].map(
      (pattern) => Number(pattern.exec(run.stdout)?.[1]),
    );
    expect(parts.reduce((sum, count) => sum + count, 1), run.context).toBe(total);
  });

  it('counts as leaked exactly the leases the spans show leaked, and never the slow query', () => {
    const spans = readTraceFile(traceFile, run);
    const checkouts = named(spans, 'pg-pool checkout');
    const leaking = checkouts.filter((span) => String(span.attributes[ATTR_POOL_CALL_PATH]).startsWith(`${LEAKING_PATH} ← `));
    const openAtShutdown = new Set(leaking.filter((span) => span.status.message === OPEN_AT_SHUTDOWN).map((span) => span.spanId));
    const idleLeaks = named(spans, 'pg-pool leak').filter(
      (span) => String(span.attributes[ATTR_POOL_CALL_PATH]).startsWith(`${LEAKING_PATH} ← `) && span.attributes['pool.lease.state'] !== 'busy',
    );
    const leaked = new Set([...openAtShutdown, ...idleLeaks.map((span) => span.links[0]?.spanId ?? span.spanId)]);
    expect(leaked.size, run.context).toBeGreaterThan(0);
    expect(run.stdout.split('\n')[0], run.context).toContain(`${LEAKING_FUNCTION} leaked ${leaked.size} pooled connection`);
    const row = new RegExp(`^  1\\. ${escape(LEAKING_FUNCTION)} — leaked \\(idle\\), last SELECT invoices — (\\d+) leases?: (\\d+) passed the leak threshold while running, (\\d+) still open at shutdown`, 'm').exec(run.stdout);
    expect(row, run.context).not.toBeNull();
    expect([Number(row?.[1]), Number(row?.[2]), Number(row?.[3])], run.context).toEqual([leaked.size, idleLeaks.length, openAtShutdown.size]);
    const table = new RegExp(`^  ${escape(LEAKING_FUNCTION)}: (\\d+) checkouts — [^\\n]*?(\\d+) leaked`, 'm').exec(run.stdout);
    expect([Number(table?.[1]), Number(table?.[2])], run.context).toEqual([leaking.length, leaked.size]);
    // The slow query passed the threshold busy and came back: a checkout, no leak.
    const totals = checkouts.filter((span) => String(span.attributes[ATTR_POOL_CALL_PATH]).startsWith(`${SLOW_QUERY_FUNCTION} (`));
    expect(totals.map((span) => span.status.message), run.context).toEqual([undefined]);
    expect(run.stdout, run.context).toMatch(new RegExp(`^  ${escape(SLOW_QUERY_FUNCTION)}: 1 checkout — 1 checked in, 0 leaked, `, 'm'));
  });

  it('ends on the culprit: its function, its line and the pool verdict are the last lines of stdout', () => {
    const lines = run.stdout.trimEnd().split('\n');
    const closing = lines.slice(lines.lastIndexOf('Culprit'));
    expect(closing.length, run.context).toBeGreaterThan(1);
    expect(closing.length, `${run.context}the closing block should fit on a screen`).toBeLessThanOrEqual(8);
    const [, place] = /\((.*)\)$/.exec(LEAKING_FRAME) ?? [];
    expect(closing[1], run.context).toBe(`  ${LEAKING_FUNCTION} at ${place}, through ${HELPER_FRAME}`);
    expect(closing.join('\n'), run.context).toMatch(new RegExp(`^  ${poolName('postgres')}: EXHAUSTED BY LEAKS of ${escape(LEAKING_FUNCTION)} — `, 'm'));
    expect(closing.join('\n'), run.context).toMatch(new RegExp(`^  ${poolName('catalog')}: UNDERSIZED — `, 'm'));
  });

  it.skipIf(SKIP_BROWSER)('draws report.html beside the trace file: lanes, bars per call path, markers and the verdicts first, in a real browser', async () => {
    const page = join(outputDir, 'nested', 'report.html');
    expect(run.stderr, run.context).toContain(`pool timeline: ${page}`);
    expect(existsSync(page), run.context).toBe(true);
    const spans = parseTraces(readFileSync(traceFile, 'utf8'));
    const checkouts = spans.filter((span) => span.name === 'pg-pool checkout');
    const pools = [...new Set(checkouts.map((span) => String(span.attributes['db.client.connection.pool.name'])))];
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage({ viewport: { width: 1240, height: 900 } });
      const network: string[] = [];
      tab.on('request', (request) => {
        if (!request.url().startsWith('file:')) network.push(request.url());
      });
      await tab.goto(pathToFileURL(page).href);
      // The first screen: one card per pool, verdict and top call path visible without scrolling.
      const cards = await tab.$$eval('.pool-card', (elements) =>
        elements.map((element) => ({
          pool: element.getAttribute('data-pool') ?? '',
          verdict: element.querySelector('.verdict')?.textContent ?? '',
          caller: element.querySelector('.top-caller')?.textContent ?? '',
          where: element.querySelector('.where')?.textContent ?? '',
          bottom: element.getBoundingClientRect().bottom,
        })),
      );
      expect(cards.map((card) => card.pool).sort(), run.context).toEqual([...pools].sort());
      const card = (database: string) => cards.find((candidate) => candidate.pool.endsWith(`/${database}`));
      const [, place] = /\((.*)\)$/.exec(LEAKING_FRAME) ?? [];
      expect(card('postgres'), run.context).toMatchObject({ verdict: 'EXHAUSTED BY LEAKED CONNECTIONS', caller: LEAKING_FUNCTION, where: place });
      expect(card('catalog')?.verdict, run.context).toBe('UNDERSIZED POOL');
      expect(card('carts')?.verdict, run.context).toBe('OK — no checkout timed out');
      for (const shown of cards) expect(shown.bottom, `${shown.pool} card below the first screen`).toBeLessThanOrEqual(900);

      const drawn = await tab.$$eval('section.pool', (sections) =>
        sections.map((section) => ({
          pool: section.getAttribute('data-pool') ?? '',
          lanes: section.querySelectorAll('g.lane').length,
          bars: [...section.querySelectorAll('rect.lease')].map((bar) => bar.getAttribute('data-call-path') ?? ''),
          markers: [...section.querySelectorAll('g.marker')].map((marker) => marker.getAttribute('data-kind') ?? ''),
        })),
      );
      for (const pool of pools) {
        const section = drawn.find((candidate) => candidate.pool === pool);
        const ofPool = checkouts.filter((span) => span.attributes['db.client.connection.pool.name'] === pool);
        // Lanes: the most connections held at once, counted here from the spans, never more than the pool has.
        const held = ofPool.flatMap((span) => {
          const grant = span.events.find((event) => event.name === EVENT_POOL_ACQUIRED)?.timeMs;
          return grant === undefined ? [] : [{ start: grant, end: Math.max(span.endMs - HANDOVER_MS, grant + 0.001) }];
        });
        const most = Math.max(...held.map((lease) => held.filter((other) => other.start <= lease.start && other.end > lease.start).length));
        expect(section?.lanes, `${run.context}${pool}`).toBe(most);
        expect(section?.lanes, `${run.context}${pool}`).toBeLessThanOrEqual(SHORT_POOL_MAX[pool.split('/')[1] ?? ''] ?? 0);
        // One bar per granted checkout, by call path.
        const expected = new Map<string, number>();
        for (const span of ofPool) {
          if (!span.events.some((event) => event.name === EVENT_POOL_ACQUIRED)) continue;
          const path = String(span.attributes[ATTR_POOL_CALL_PATH]);
          expected.set(path, (expected.get(path) ?? 0) + 1);
        }
        const bars = new Map<string, number>();
        for (const path of section?.bars ?? []) bars.set(path, (bars.get(path) ?? 0) + 1);
        expect(bars, `${run.context}${pool}`).toEqual(expected);
        // Markers: a leak per leak span, an exhausted mark per pool.exhausted event, a stall per stall span.
        const count = (kind: string) => (section?.markers ?? []).filter((marker) => marker === kind).length;
        const ofThisPool = (span: { attributes: Record<string, unknown> }) => span.attributes['db.client.connection.pool.name'] === pool;
        expect(count('leak'), pool).toBe(spans.filter((span) => span.name === 'pg-pool leak' && ofThisPool(span)).length);
        expect(count('exhausted'), pool).toBe(ofPool.flatMap((span) => span.events.filter((event) => event.name === EVENT_POOL_EXHAUSTED)).length);
        expect(count('stall'), pool).toBe(spans.filter((span) => span.name === 'pg-pool wait.stalled' && ofThisPool(span)).length);
      }
      expect(drawn.find((section) => section.pool.endsWith('/postgres'))?.markers, run.context).toContain('leak');

      // Hover over a leaked lease: the holder's details.
      const leakedBar = tab.locator('rect.lease[data-outcome="open at shutdown"]').first();
      await leakedBar.hover({ force: true });
      const tip = await tab.locator('#tip').innerText();
      expect(tip, run.context).toContain(`${LEAKING_FUNCTION} — open at shutdown`);
      expect(tip, run.context).toContain('lease state: idle');
      expect(tip, run.context).toContain('last statement: SELECT invoices');
      expect(network, 'the page loaded something over the network').toEqual([]);
      mkdirSync(join(REPO_ROOT, 'demo-output'), { recursive: true });
      await tab.mouse.move(0, 0);
      await tab.screenshot({ path: join(REPO_ROOT, 'demo-output', 'report.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  });

  it('exports checkout and leak spans and db.client.connection metrics over OTLP/HTTP protobuf', () => {
    const types = new Set(receiver.contentTypes());
    expect([...types], run.context).toEqual(['application/x-protobuf']);
    const spans = receiver.spans();
    expect(named(spans, 'pg-pool checkout').length, run.context).toBeGreaterThan(0);
    const leaks = named(spans, 'pg-pool leak').filter((span) => span.attributes['pool.lease.state'] !== 'busy');
    expect(leaks.length, run.context).toBeGreaterThan(0);
    expect(new Set(leaks.map((span) => String(span.attributes[ATTR_POOL_CALL_PATH]).split(' ← ').slice(0, 2).join(' ← '))), run.context).toEqual(
      new Set([LEAKING_PATH]),
    );
    expect(spans.every((span) => span.serviceName === 'pool-leak-demo'), run.context).toBe(true);
    expect(receiver.metricNames(), run.context).toEqual(
      expect.arrayContaining([
        'db.client.connection.count',
        'db.client.connection.max',
        'db.client.connection.pending_requests',
        'db.client.connection.wait_time',
        'db.client.connection.use_time',
        'db.client.connection.timeouts',
        'pool.leak.suspected',
        'pool.use.foreign_context',
      ]),
    );
  });
});

describe('demo flags', () => {
  it('--help prints the usage and exits 0 without starting anything', async () => {
    const help = await runDemo(['--help']);
    expect(help.code, help.context).toBe(0);
    expect(help.stdout, help.context).toMatch(/^Usage: /);
    for (const flag of ['--duration', '--requests', '--concurrency', '--pool-size', '--threshold', '--output', '--otlp-endpoint', '--short']) {
      expect(help.stdout, help.context).toContain(flag);
    }
    expect(help.stderr, help.context).toBe('');
  });

  it('a bad flag exits 2 and says what to do', async () => {
    const bad = await runDemo(['--requests', 'many']);
    expect(bad.code, bad.context).toBe(2);
    expect(bad.stderr, bad.context).toContain('--requests "many" is not a number');
    const unknown = await runDemo(['--request', '5']);
    expect(unknown.code, unknown.context).toBe(2);
    expect(unknown.stderr, unknown.context).toContain('--help');
  });
});
