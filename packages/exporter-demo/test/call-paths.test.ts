// The leak report on the real instrumentation and a real pg pool, where an application helper
// hides its callers: both callers of `safeConnect` get the helper's line as code.*, and only
// `pool.call_path` tells them apart. The report must give each caller a row of its own and name
// the leaking one — in the leak table, the pool's verdict and the first line — never the honest
// one. The spans go to the report exactly as a span processor hands them over (export()).
import type { Pool, PoolClient } from 'pg';
import { relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ATTR_POOL_CALL_PATH } from 'opentelemetry-instrumentation-pool-leak';
import { loadPg, postgresConfig } from '../../instrumentation-pool-leak/test/support/pg';
import { lineOf } from '../../instrumentation-pool-leak/test/support/source-lines';
import { setupTracing } from '../../instrumentation-pool-leak/test/support/tracing';
import { LeakReportExporter } from '../src/leak-report-exporter';

/** Above the slow honest hold (SLOW_S), so only the leaked leases pass it. */
const THRESHOLD_MS = 1000;
const SLOW_S = 0.5;
const tracing = setupTracing({ leakThresholdMs: THRESHOLD_MS });
const pg = loadPg();
const pool = new pg.Pool({ ...postgresConfig(), max: 3, connectionTimeoutMillis: 300 });
/** `pool.call_path` writes paths relative to the working directory. */
const FILE = relative(process.cwd(), fileURLToPath(import.meta.url));
const at = (name: string) => `${FILE}:${lineOf(import.meta.url, name)}`;

const leaked: PoolClient[] = [];
afterAll(async () => {
  for (const client of leaked.splice(0)) client.release();
  await pool.end();
  tracing.instrumentation.disable();
});

/** The application's helper: every checkout below but one goes through it. */
function safeConnect(target: Pool): Promise<PoolClient> {
  return target.connect(); // line:helper
}

/** THE BUG: keeps the connection. */
async function exportInvoice(target: Pool): Promise<void> {
  const client = await safeConnect(target); // line:leaking-caller
  await client.query('SELECT 1');
  leaked.push(client);
}

/** Honest: always gives the connection back, after `seconds` of work. */
async function buildStatement(target: Pool, seconds: number): Promise<void> {
  const client = await safeConnect(target); // line:honest-caller
  try {
    await client.query('SELECT pg_sleep($1)', [seconds]);
  } finally {
    client.release();
  }
}

async function getOrder(target: Pool): Promise<unknown> {
  return target.connect().then(
    (client) => client.release(),
    (error: unknown) => error,
  );
}

async function until(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('the leak report on a helper with two callers (real pg pool)', () => {
  it('gives each caller of the helper a row, and names the leaking caller in the leak table, the verdict and the first line', async () => {
    // One route each, so each caller has one call path (the route's frame is its third frame).
    const statementRoute = (seconds: number) => tracing.inRequest('GET /statements/:id', () => buildStatement(pool, seconds));
    const exportRoute = () => tracing.inRequest('GET /invoices/:id/export', () => exportInvoice(pool));
    for (let round = 0; round < 3; round++) await statementRoute(0);
    for (let round = 0; round < 2; round++) await exportRoute();
    // The honest caller holds the last connection through the whole wait of the next checkout.
    const slow = statementRoute(SLOW_S);
    await sleep(50);
    const failure = await tracing.inRequest('GET /orders/:id', () => getOrder(pool));
    expect((failure as Error).message).toBe('timeout exceeded when trying to connect');
    await slow;
    await until('both leak spans', () => tracing.spansNamed('pg-pool leak').length >= 2);

    const spans = tracing.exporter.getFinishedSpans();
    const checkouts = spans.filter((span) => span.name === 'pg-pool checkout');
    // The helper hides the callers: the same code.* on every checkout through it ...
    const throughHelper = checkouts.filter((span) => span.attributes['code.function.name'] === 'safeConnect');
    expect(new Set(throughHelper.map((span) => span.attributes['code.line.number']))).toEqual(new Set([lineOf(import.meta.url, 'helper')]));
    // ... and the call path tells them apart.
    const honestPath = `safeConnect (${at('helper')}) ← buildStatement (${at('honest-caller')})`;
    const leakingPath = `safeConnect (${at('helper')}) ← exportInvoice (${at('leaking-caller')})`;
    expect(new Set(throughHelper.map((span) => String(span.attributes[ATTR_POOL_CALL_PATH]).split(' ← ').slice(0, 2).join(' ← ')))).toEqual(
      new Set([honestPath]),
    );
    const leakSpans = spans.filter((span) => span.name === 'pg-pool leak');
    for (const leak of leakSpans) expect(String(leak.attributes[ATTR_POOL_CALL_PATH])).toMatch(new RegExp(`^${escape(leakingPath)}( ← |$)`));

    const report = new LeakReportExporter();
    report.export(spans, () => {});
    const data = report.data();

    expect(data.leaks.map((row) => [row.caller.functionName, row.caller.location, row.caller.through, row.leaked])).toEqual([
      ['exportInvoice', at('leaking-caller'), [`safeConnect (${at('helper')})`], 2],
    ]);
    const rows = data.callPaths.map((row) => ({ caller: row.caller.functionName, helper: row.site.functionName, checkouts: row.checkouts, leaked: row.leaked }));
    expect(rows).toEqual(
      expect.arrayContaining([
        { caller: 'buildStatement', helper: 'safeConnect', checkouts: 4, leaked: 0 },
        { caller: 'getOrder', helper: 'getOrder', checkouts: 1, leaked: 0 },
      ]),
    );
    // The leaked leases' checkout spans are still open: the leak spans counted them.
    expect(data.leaks[0]?.reportedByThreshold).toBe(2);

    const [verdict] = data.pools;
    expect(verdict?.verdict).toMatchObject({ kind: 'leaks', caller: { functionName: 'exportInvoice' }, slots: 2, holderSlots: 3 });

    const text = report.format();
    expect(text.split('\n')[0]).toBe(`LEAK: exportInvoice leaked 2 pooled connections (${at('leaking-caller')}, through safeConnect (${at('helper')}))`);
    expect(text).toMatch(new RegExp(`EXHAUSTED BY LEAKS — exportInvoice leaks connections on call path ${escape(leakingPath)}`));
    expect(text).toMatch(new RegExp(`^  buildStatement: 4 checkouts — 4 checked in, 0 leaked, longest hold \\d+ ms\\n     ${escape(honestPath)}`, 'm'));
    expect(text).not.toMatch(/(LEAK|EXHAUSTED BY LEAKS)[^\n]*buildStatement/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
