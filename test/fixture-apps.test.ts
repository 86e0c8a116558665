// Runs the fixture apps in test/fixtures as real Node processes against the real PostgreSQL. They
// load the BUILT package by its name (`npm run build` first), the way a CommonJS service
// (`require`) and an ES-module service (`import` plus the OTel loader hook) load it.
import { basename, isAbsolute } from 'node:path';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { describe, expect, inject, it } from 'vitest';
import { postgresEnv, runNode, type Ended } from './support/node-process';

/** Well under vitest's testTimeout, so a hung app fails with its stderr instead of a bare timeout. */
const RUN_TIMEOUT_MS = 20_000;
const CHECKOUT = 'pg-pool checkout';

/** The shape test/fixtures/span-report.cjs prints. */
interface FixtureSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, unknown>;
  events: { name: string; attributes: Record<string, unknown> }[];
  status: { code: number; message?: string };
}

interface FixtureReport {
  app: string;
  /** Where the ESM app's `import 'pg'` resolved. */
  pgEntry?: string;
  spans: FixtureSpan[];
}


/** What one app is expected to have produced. */
interface ExpectedApp {
  parentSpan: string;
  file: string;
  /** The app's functions that check out, one checkout each. */
  checkoutFunctions: string[];
}

describe('fixture apps: the built package in CommonJS and ES-module processes', () => {
  it('a CommonJS app that requires pg gets a checkout span per checkout', async () => {
    const run = await runFixture(['test/fixtures/cjs-app.cjs']);
    const report = parseReport(run);

    expectCheckouts(run, report, {
      parentSpan: 'cjs-app request',
      file: 'cjs-app.cjs',
      checkoutFunctions: ['reserveAndQuery', 'queryViaPool'],
    });
    expectNoPassword(run, report);
  });

  it('an ES-module app that imports pg gets a checkout span per checkout, pg-pool patched by the loader hook', async () => {
    const run = await runFixture(['--import', './test/fixtures/esm-setup.mjs', 'test/fixtures/esm-app.mjs']);
    const report = parseReport(run);

    // `import pg from 'pg'` loaded pg's ESM entry, not the CommonJS main that require() loads.
    expect(new URL(report.pgEntry ?? 'missing:').pathname, run.context).toMatch(/\/node_modules\/pg\/esm\/index\.mjs$/);
    // reserveThroughImportedConnect checks out through pg-pool's connect as patched when pg-pool
    // had only been `import`ed, before pg's require() could patch it (esm-pg-pool-first.mjs).
    expectCheckouts(run, report, {
      parentSpan: 'esm-app request',
      file: 'esm-app.mjs',
      checkoutFunctions: ['reserveAndQuery', 'queryViaPool', 'reserveThroughImportedConnect'],
    });
    expectNoPassword(run, report);
  });

  it('an ES-module app importing generic-pool, tarn, mysql2/promise and mariadb: one checkout span each at its line', async () => {
    const mariadb = inject('mariadb');
    const withMariaDb = 'connection' in mariadb;
    const run = await runFixture(['--import', './test/fixtures/esm-setup.mjs', 'test/fixtures/esm-pools-app.mjs'], {
      ...(withMariaDb && { FIXTURE_MARIADB: JSON.stringify(mariadb.connection) }),
    });
    const report = parseReport(run);
    const parent = report.spans.find((span) => span.name === 'esm-pools-app request');
    expect(parent, run.context).toBeDefined();
    const expected = [
      ['generic-pool checkout', 'borrowFromGenericPool'],
      ['tarn checkout', 'borrowFromTarn'],
      ...(withMariaDb ? [['mysql2 checkout', 'borrowFromMysql2'], ['mariadb checkout', 'borrowFromMariadb']] : []),
    ];
    const checkouts = report.spans.filter((span) => span.name.endsWith(' checkout'));
    expect(checkouts.map((span) => [span.name, span.attributes['code.function.name']]), run.context).toEqual(expected);
    for (const span of checkouts) {
      expect(basename(String(span.attributes['code.file.path'])), run.context).toBe('esm-pools-app.mjs');
      expect(span.parentSpanId, run.context).toBe(parent!.spanId);
      expect(span.attributes['pool.held_ms'], run.context).toBeTypeOf('number');
      expect(span.status.code, run.context).not.toBe(SpanStatusCode.ERROR);
    }
  });

  it('without the loader hook, the import-time connect is unpatched (control for the test above)', async () => {
    const run = await runFixture(['--import', './test/fixtures/esm-setup.mjs', 'test/fixtures/esm-app.mjs'], {
      FIXTURE_LOADER_HOOK: 'off',
    });
    const report = parseReport(run);

    // pg's own require('pg-pool') is still patched through require-in-the-middle...
    expectCheckouts(run, report, {
      parentSpan: 'esm-app request',
      file: 'esm-app.mjs',
      checkoutFunctions: ['reserveAndQuery', 'queryViaPool'],
    });
    // ...but the connect captured right after `import PgPool from 'pg-pool'` was the original.
    expect(checkoutFrom(report, 'reserveThroughImportedConnect'), run.context).toBeUndefined();
  });
});

/** Runs `node <args>` from the repository root with the test server's PG* settings. */
function runFixture(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<Ended> {
  return runNode(args, { timeoutMs: RUN_TIMEOUT_MS, env: { ...postgresEnv(), ...extraEnv } });
}

/** The app's one stdout line: exit code 0 and nothing else on stdout (the package prints nothing). */
function parseReport(run: Ended): FixtureReport {
  expect(run.code, run.context).toBe(0);
  const lines = run.stdout.split('\n').filter((line) => line.trim() !== '');
  expect(lines, `${run.context}stdout must be exactly the report line`).toHaveLength(1);
  try {
    return JSON.parse(lines[0] ?? '') as FixtureReport;
  } catch (error) {
    return expect.fail(`${run.context}stdout is not JSON (${String(error)}):\n${run.stdout}`);
  }
}

function checkoutFrom(report: FixtureReport, functionName: string): FixtureSpan | undefined {
  return report.spans.find((span) => span.name === CHECKOUT && span.attributes['code.function.name'] === functionName);
}

/** One completed checkout span per checkout function, each a child of the app's request span. */
function expectCheckouts(run: Ended, report: FixtureReport, app: ExpectedApp): void {
  const check = (actual: unknown) => expect(actual, run.context);
  const parent = report.spans.find((span) => span.name === app.parentSpan);
  if (parent === undefined) return expect.fail(`${run.context}no span named "${app.parentSpan}"`);
  const checkoutSites = report.spans
    .filter((span) => span.name === CHECKOUT)
    .map((span) => span.attributes['code.function.name']);
  check(checkoutSites.sort()).toEqual([...app.checkoutFunctions].sort());

  for (const functionName of app.checkoutFunctions) {
    const span = checkoutFrom(report, functionName);
    if (span === undefined) return expect.fail(`${run.context}no "${CHECKOUT}" span from ${functionName}`);
    check(span.kind).toBe(SpanKind.INTERNAL);
    check(span.parentSpanId).toBe(parent.spanId);
    check(span.traceId).toBe(parent.traceId);
    const filePath = String(span.attributes['code.file.path']);
    // An absolute path, not the file:// URL an ES module's stack frames carry.
    check(isAbsolute(filePath)).toBe(true);
    check(basename(filePath)).toBe(app.file);
    check(span.attributes['code.stacktrace']).toContain(functionName);
    check(span.attributes['pool.library']).toBe('pg-pool');
    check(span.attributes['db.system.name']).toBe('postgresql');
    check(span.attributes['pool.wait_ms']).toBeTypeOf('number');
    check(span.attributes['pool.held_ms']).toBeTypeOf('number');
    check(span.events.map((event) => event.name)).toContain('pool.acquired');
    check(span.status.code).not.toBe(SpanStatusCode.ERROR);
  }
}

/** No span or event attribute carries the password the app connected with. */
function expectNoPassword(run: Ended, report: FixtureReport): void {
  const { password } = inject('postgres');
  const leaking = report.spans.flatMap((span) =>
    [span.attributes, ...span.events.map((event) => event.attributes)].flatMap((attributes) =>
      Object.entries(attributes)
        .filter(([, value]) => String(value).includes(password))
        .map(([key]) => `${span.name}: ${key}`),
    ),
  );
  expect(leaking, run.context).toEqual([]);
}
