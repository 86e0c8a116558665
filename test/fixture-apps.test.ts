// Runs the fixture apps in test/fixtures as real Node processes against the real PostgreSQL. They
// load the BUILT package by its name (`npm run build` first), the way a CommonJS service
// (`require`) and an ES-module service (`import` plus the OTel loader hook) load it.
import { execFile, type ExecFileException } from 'node:child_process';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { describe, expect, inject, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
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

interface FixtureRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Prefix of every assertion message: how the app ended and everything it wrote to stderr. */
  context: string;
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
    const run = await runNode(['test/fixtures/cjs-app.cjs']);
    const report = parseReport(run);

    expectCheckouts(run, report, {
      parentSpan: 'cjs-app request',
      file: 'cjs-app.cjs',
      checkoutFunctions: ['reserveAndQuery', 'queryViaPool'],
    });
    expectNoPassword(run, report);
  });

  it('an ES-module app that imports pg gets a checkout span per checkout, pg-pool patched by the loader hook', async () => {
    const run = await runNode(['--import', './test/fixtures/esm-setup.mjs', 'test/fixtures/esm-app.mjs']);
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

  it('without the loader hook, the import-time connect is unpatched (control for the test above)', async () => {
    const run = await runNode(['--import', './test/fixtures/esm-setup.mjs', 'test/fixtures/esm-app.mjs'], {
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
function runNode(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<FixtureRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { cwd: ROOT, env: childEnv(extraEnv), timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        // execFile reports a non-zero exit as an error whose `code` is the exit code; a spawn
        // failure has a string code such as ENOENT instead.
        const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({
          exitCode,
          stdout,
          stderr,
          context: `node ${args.join(' ')} ${howItEnded(error, exitCode)}; stderr:\n${stderr === '' ? '(empty)' : stderr}\n`,
        });
      },
    );
  });
}

function howItEnded(error: ExecFileException | null, exitCode: number | null): string {
  if (error === null) return 'exited with 0';
  if (error.killed === true && error.signal === 'SIGKILL') return `was killed after ${RUN_TIMEOUT_MS} ms`;
  if (error.signal) return `was killed by ${error.signal}`;
  return exitCode === null ? `did not run: ${error.message}` : `exited with ${exitCode}`;
}

/**
 * The runner's environment without what would change the app's behaviour: NODE_OPTIONS (the
 * runner's own flags and loaders), OTEL_* (e.g. OTEL_POOL_LEAK_ENABLED=false in a developer's
 * shell) and PG* (settings of some other server), plus the test server's connection.
 */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const { host, port, user, password, database } = inject('postgres');
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'NODE_OPTIONS' || name.startsWith('OTEL_') || name.startsWith('PG')) continue;
    env[name] = value;
  }
  return { ...env, PGHOST: host, PGPORT: String(port), PGUSER: user, PGPASSWORD: password, PGDATABASE: database, ...extra };
}

/** The app's one stdout line: exit code 0 and nothing else on stdout (the package prints nothing). */
function parseReport(run: FixtureRun): FixtureReport {
  expect(run.exitCode, run.context).toBe(0);
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
function expectCheckouts(run: FixtureRun, report: FixtureReport, app: ExpectedApp): void {
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
function expectNoPassword(run: FixtureRun, report: FixtureReport): void {
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
