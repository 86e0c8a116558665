// The zero-code entry, `opentelemetry-instrumentation-pool-leak/register`, in real Node processes:
// fixture apps with no OpenTelemetry setup of their own, the BUILT package (`npm run build`
// first), the real PostgreSQL, and the loopback OTLP receiver as OTEL_EXPORTER_OTLP_ENDPOINT, so
// what is asserted is what the SDK's own OTLP/HTTP protobuf exporters sent.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { postgresEnv, REPO_ROOT, startNode, type Ended, type NodeOptions, type RunningNode } from './support/node-process';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver';

/**
 * Well under vitest's testTimeout, so a hung app fails with its stderr instead of a bare timeout.
 * Starting the auto-instrumentations bundle (installed in the workspace, so the entry starts it)
 * takes a few seconds on a busy CI machine.
 */
const RUN_TIMEOUT_MS = 25_000;
const REGISTER = 'opentelemetry-instrumentation-pool-leak/register';
const ESM_APP = 'test/fixtures/register-app.mjs';
const CJS_APP = 'test/fixtures/register-app.cjs';
const ESM_RESULT = 'register-app: 1 2 3';
const CJS_RESULT = 'register-app: 1 2';
const HTTP_APP = 'test/fixtures/register-http-app.cjs';
const HTTP_RESULT = 'register-http-app: 200 7';
const EXIT_APP = 'test/fixtures/register-exit-app.cjs';
const HIDE_PACKAGES = './test/fixtures/register-hide-packages.cjs';
const AUTO_BUNDLE = '@opentelemetry/auto-instrumentations-node';
/** The contract: a normal exit with no reachable collector adds at most this much. */
const EXIT_BOUND_MS = 1_500;
/** For a CI machine busy with other suites; the bound itself is what is asserted. */
const CI_SLACK_MS = 1_000;
/** A program given as -e / -p / stdin: one checkout inside a span, then it ends. */
const EVAL_PROGRAM = [
  "const { trace } = require('@opentelemetry/api');",
  "const pg = require('pg');",
  'const pool = new pg.Pool({ max: 1 });',
  "trace.getTracer('eval').startActiveSpan('eval request', async (span) => {",
  '  const client = await pool.connect();',
  '  client.release();',
  '  span.end();',
  '  await pool.end();',
  "  process.stdout.write('eval: ok\\n');",
  '})',
].join(' ');
const REQUEST_SPAN = 'register-app request';
const CHECKOUT = 'pg-pool checkout';
const SERVICE_NAME = 'register-test-service';
/** Scopes of the contrib instrumentations the entry starts for request parents. */
const CONTRIB_SCOPE_PREFIX = '@opentelemetry/instrumentation-';
// OTLP's enums, as the receiver decodes them (not the API's SpanKind numbering).
const OTLP_SPAN_KIND_INTERNAL = 1;
const OTLP_SPAN_KIND_SERVER = 2;
const OTLP_STATUS_ERROR = 2;
const LEAK_STATUS_MESSAGE = 'lease still open at tracer provider shutdown';
const ESM_FUNCTIONS = ['reserveAndQuery', 'queryViaPool', 'reserveThroughImportedConnect'];
const CJS_FUNCTIONS = ['reserveAndQuery', 'queryViaPool'];
const POOL_METRICS = [
  'db.client.connection.count',
  'db.client.connection.max',
  'db.client.connection.wait_time',
  'db.client.connection.use_time',
];

let receiver: OtlpReceiver;

beforeEach(async () => {
  receiver = await startOtlpReceiver();
});

afterEach(async () => {
  await receiver.close();
});

describe('register entry: an app with no OpenTelemetry setup of its own', () => {
  it('--import, ES-module app: checkout spans under the app span, the leak ended at shutdown, metrics, all OTLP/HTTP protobuf', async () => {
    const run = await runNode(['--import', REGISTER, ESM_APP]);

    expectNormalRun(run, ESM_RESULT);
    // Nothing on stderr either: no warning (a loader registered twice, a deprecation) and no diag
    // output without OTEL_LOG_LEVEL.
    expect(run.stderr, run.context).toBe('');
    const spans = receiver.spans();
    // reserveThroughImportedConnect used pg-pool's connect as it was right after `import
    // 'pg-pool'`: its span exists only because the loader hook patched the import.
    expectCheckouts(run, spans, ESM_FUNCTIONS, basename(ESM_APP));
    expectLeakEndedAtShutdown(run, spans);
    expect(new Set(spans.map((span) => span.serviceName)), run.context).toEqual(new Set([SERVICE_NAME]));
    expect(receiver.metricNames(), run.context).toEqual(expect.arrayContaining(POOL_METRICS));
    expect(new Set(receiver.contentTypes()), run.context).toEqual(new Set(['application/x-protobuf']));
  });

  it('-r, CommonJS app: the same spans, leak and metrics', async () => {
    const run = await runNode(['-r', REGISTER, CJS_APP]);

    expectNormalRun(run, CJS_RESULT);
    expect(run.stderr, run.context).toBe('');
    const spans = receiver.spans();
    expectCheckouts(run, spans, CJS_FUNCTIONS, basename(CJS_APP));
    expectLeakEndedAtShutdown(run, spans);
    expect(receiver.metricNames(), run.context).toEqual(expect.arrayContaining(POOL_METRICS));
    expect(new Set(receiver.contentTypes()), run.context).toEqual(new Set(['application/x-protobuf']));
  });
});

describe('register entry: switches', () => {
  it('OTEL_POOL_LEAK_ENABLED=false: the SDK runs (the app span is exported), nothing of pool-leak is', async () => {
    // instrumentation-pg (from the auto bundle) reports pool metrics under the same semconv names.
    const run = await runNode(['--import', REGISTER, ESM_APP], { OTEL_POOL_LEAK_ENABLED: 'false', OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'pg' });

    expectNormalRun(run, ESM_RESULT);
    expect(spanNames(), run.context).toEqual([REQUEST_SPAN]);
    expect(receiver.metricNames().filter(isPoolMetric), run.context).toEqual([]);
  });

  it('OTEL_SDK_DISABLED=true: nothing starts and nothing is sent', async () => {
    // OTEL_LOG_LEVEL=debug would make a NodeSDK, had one been created, install the diag console
    // logger and log its set-up (on stdout and stderr): silence proves nothing was created.
    const run = await runNode(['--import', REGISTER, ESM_APP], { OTEL_SDK_DISABLED: 'true', OTEL_LOG_LEVEL: 'debug' });

    expectNormalRun(run, ESM_RESULT);
    expect(run.stderr, run.context).toBe('');
    expect(receiver.contentTypes(), `${run.context}requests received`).toEqual([]);
  });

  it.each([
    ['OTEL_NODE_DISABLED_INSTRUMENTATIONS=pool-leak', { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'pool-leak' }],
    ['OTEL_NODE_DISABLED_INSTRUMENTATIONS="http, pool-leak"', { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'http, pool-leak' }],
    ['OTEL_NODE_ENABLED_INSTRUMENTATIONS=http,pg', { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,pg' }],
    [
      'pool-leak both enabled and disabled',
      { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'pool-leak', OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'pool-leak' },
    ],
  ])('%s: the SDK runs, pool-leak is not registered', async (_title, env) => {
    const run = await runNode(['-r', REGISTER, CJS_APP], env);

    expectNormalRun(run, CJS_RESULT);
    expect(spanNames(), run.context).toEqual([REQUEST_SPAN]);
  });

  it('OTEL_NODE_ENABLED_INSTRUMENTATIONS naming pool-leak keeps it', async () => {
    const run = await runNode(['-r', REGISTER, CJS_APP], { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http, pool-leak' });

    expectNormalRun(run, CJS_RESULT);
    expectCheckouts(run, receiver.spans(), CJS_FUNCTIONS, basename(CJS_APP));
  });

  it('OTEL_TRACES_SAMPLER=always_off (read by NodeSDK): no span is exported, pool metrics still are', async () => {
    // instrumentation-pg (from the auto bundle) reports pool metrics under the same semconv names.
    const run = await runNode(['-r', REGISTER, CJS_APP], { OTEL_TRACES_SAMPLER: 'always_off', OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'pg' });

    expectNormalRun(run, CJS_RESULT);
    expect(spanNames(), run.context).toEqual([]);
    expect(receiver.metricNames(), run.context).toEqual(expect.arrayContaining(POOL_METRICS));
  });

  it.each([
    ['OTEL_POOL_LEAK_ENABLED', 'maybe'],
    ['OTEL_POOL_LEAK_STACK_FRAMES', 'lots'],
    ['OTEL_POOL_LEAK_CHECKIN_STACK_FRAMES', '-1'],
    ['OTEL_POOL_LEAK_THRESHOLD_MS', '30s'],
    ['OTEL_POOL_LEAK_LIBRARIES', 'oracle'],
  ])('%s=%s: one warning on stderr naming it, defaults used, the app unaffected', async (name, value) => {
    const run = await runNode(['--import', REGISTER, ESM_APP], { OTEL_LOG_LEVEL: 'warn', [name]: value });

    expectNormalRun(run, ESM_RESULT);
    const stderrLines = run.stderr.split('\n').filter((line) => line.trim() !== '');
    expect(stderrLines, run.context).toHaveLength(1);
    expect(stderrLines[0], run.context).toContain(name);
    expectCheckouts(run, receiver.spans(), ESM_FUNCTIONS, basename(ESM_APP));
  });

  it.each([
    ['on the command line', ['--experimental-loader=@opentelemetry/instrumentation/hook.mjs'], {}],
    ['in NODE_OPTIONS', [], { NODE_OPTIONS: '--experimental-loader=@opentelemetry/instrumentation/hook.mjs' }],
  ])('the OpenTelemetry loader hook already %s: not registered a second time, imports still patched', async (_where, flags, env) => {
    const run = await runNode([...flags, '--import', REGISTER, ESM_APP], env);

    expectNormalRun(run, ESM_RESULT);
    // import-in-the-middle warns when its hook is initialised twice.
    expect(run.stderr, run.context).not.toMatch(/already been initialized/);
    expectCheckouts(run, receiver.spans(), ESM_FUNCTIONS, basename(ESM_APP));
  });

  it('without @opentelemetry/sdk-node installed: one line on stderr saying how to install it, the app unaffected', async () => {
    const run = await runNode(['-r', './test/fixtures/register-without-sdk-node.cjs', '-r', REGISTER, CJS_APP]);

    expectNormalRun(run, CJS_RESULT);
    const stderrLines = run.stderr.split('\n').filter((line) => line.trim() !== '');
    expect(stderrLines, run.context).toHaveLength(1);
    expect(stderrLines[0], run.context).toContain('npm install @opentelemetry/sdk-node');
    expect(receiver.contentTypes(), `${run.context}requests received`).toEqual([]);
  });
});

describe('register entry: the process ends as it would without it', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s, app without a handler: the spans are flushed, the process still ends by that signal',
    async (signal) => {
      const withoutEntry = await signalWaitingApp([ESM_APP], signal);
      // The control: this is how the app ends on its own.
      expect(withoutEntry.signal, withoutEntry.context).toBe(signal);

      const run = await signalWaitingApp(['--import', REGISTER, ESM_APP], signal);

      expect(run.signal, run.context).toBe(signal);
      expect(run.code, run.context).toBeNull();
      expect(run.stderr, run.context).toBe('');
      const spans = receiver.spans();
      expectCheckouts(run, spans, ESM_FUNCTIONS, basename(ESM_APP));
      // Still held when the signal came: ended by the shutdown, exported before the exit.
      expectLeakEndedAtShutdown(run, spans);
    },
  );

  it("SIGTERM, app with its own handler: flushed, and the app's handler decides (here: end normally)", async () => {
    const run = await signalWaitingApp(['--import', REGISTER, ESM_APP], 'SIGTERM', { FIXTURE_OWN_SIGNAL_HANDLER: '1' });

    expect(run.signal, run.context).toBeNull();
    expect(run.code, run.context).toBe(0);
    expect(stdoutLines(run), run.context).toEqual([ESM_RESULT, 'register-app: ready', 'register-app: handled SIGTERM', 'register-app: 4']);
    const spans = receiver.spans();
    expectCheckouts(run, spans, ESM_FUNCTIONS, basename(ESM_APP));
    // The signal only flushed: the SDK kept recording what the app did after it...
    const afterWait = spans.find((span) => span.name === 'register-app after wait');
    expect(afterWait, run.context).toBeDefined();
    const afterWaitCheckout = checkoutFrom(spans, 'queryAfterWaiting');
    expect(afterWaitCheckout === undefined ? undefined : requestParentOf(afterWaitCheckout, spans), run.context).toBe(afterWait?.spanId);
    // ...and shut down when the app's loop ran dry, ending the lease it never gave back.
    expectLeakEndedAtShutdown(run, spans);
  });
});

describe('register entry: request parents', () => {
  it('auto-instrumentations-node installed: started next to pool-leak, its HTTP server span parents the checkout', async () => {
    const run = await runNode(['-r', REGISTER, HTTP_APP]);

    expectNormalRun(run, HTTP_RESULT);
    expect(run.stderr, run.context).toBe('');
    expectServerSpanAbove(run, 'handleOrder');
    // The rest of the bundle runs too (here: the pg query spans), and pool-leak once.
    expect(scopesOf(receiver.spans()), run.context).toContain('@opentelemetry/instrumentation-pg');
    expect(receiver.spans().filter((span) => span.name === CHECKOUT), run.context).toHaveLength(1);
  });

  it('auto-instrumentations-node, OTEL_NODE_ENABLED_INSTRUMENTATIONS=http,pool-leak: only those two start', async () => {
    const run = await runNode(['-r', REGISTER, HTTP_APP], { OTEL_LOG_LEVEL: 'error', OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,pool-leak' });

    expectNormalRun(run, HTTP_RESULT);
    // No "Provided instrumentation name ... not found" from the bundle for our short name.
    expect(run.stderr, run.context).toBe('');
    expectServerSpanAbove(run, 'handleOrder');
    expect(scopesOf(receiver.spans()), run.context).toEqual(new Set(['@opentelemetry/instrumentation-http', 'opentelemetry-instrumentation-pool-leak']));
  });

  it('auto-instrumentations-node, OTEL_NODE_DISABLED_INSTRUMENTATIONS=http: no server span, the checkout is still recorded', async () => {
    const run = await runNode(['-r', REGISTER, HTTP_APP], { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'http' });

    expectNormalRun(run, HTTP_RESULT);
    expect(run.stderr, run.context).toBe('');
    expect(receiver.spans().filter((span) => span.kind === OTLP_SPAN_KIND_SERVER), run.context).toEqual([]);
    expect(checkoutFrom(receiver.spans(), 'handleOrder'), run.context).toBeDefined();
  });

  it('only @opentelemetry/instrumentation-http installed: its server span parents the checkout', async () => {
    const run = await runNode(['-r', HIDE_PACKAGES, '-r', REGISTER, HTTP_APP], { FIXTURE_HIDDEN_PACKAGES: AUTO_BUNDLE });

    expectNormalRun(run, HTTP_RESULT);
    expect(run.stderr, run.context).toBe('');
    expectServerSpanAbove(run, 'handleOrder');
    expect(scopesOf(receiver.spans()), run.context).toEqual(new Set(['@opentelemetry/instrumentation-http', 'opentelemetry-instrumentation-pool-leak']));
  });

  it('neither installed: one line on stderr saying what to install; checkouts still recorded, as roots', async () => {
    const run = await runNode(['-r', HIDE_PACKAGES, '-r', REGISTER, HTTP_APP], {
      FIXTURE_HIDDEN_PACKAGES: `${AUTO_BUNDLE},@opentelemetry/instrumentation-http`,
    });

    expectNormalRun(run, HTTP_RESULT);
    expect(stderrLines(run), run.context).toEqual([expect.stringContaining(`install ${AUTO_BUNDLE}`)]);
    const checkout = checkoutFrom(receiver.spans(), 'handleOrder');
    expect(checkout, run.context).toBeDefined();
    expect(checkout?.parentSpanId, run.context).toBeUndefined();
  });

  it('resolved from the application, not from this package: an app outside the workspace gets the hint', async () => {
    const appDir = mkdtempSync(join(tmpdir(), 'pool-leak-register-app-'));
    try {
      writeFileSync(join(appDir, 'app.cjs'), "process.stdout.write('outside-app: ran\\n');\n");
      const registerFile = join(REPO_ROOT, 'packages/instrumentation-pool-leak/build/src/register/index.js');
      const run = await runNode(['-r', registerFile, join(appDir, 'app.cjs')], {}, { cwd: appDir });

      expectNormalRun(run, 'outside-app: ran');
      expect(stderrLines(run), run.context).toEqual([expect.stringContaining(`install ${AUTO_BUNDLE}`)]);
    } finally {
      rmSync(appDir, { recursive: true, force: true });
    }
  });
});

describe('register entry: an exit with no collector is bounded', () => {
  let hanging: { server: Server; sockets: Set<Socket> } | undefined;

  afterEach(async () => {
    if (hanging === undefined) return;
    const { server, sockets } = hanging;
    hanging = undefined;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  // 2,000 checkouts fill several span batches, and the exports of the first ones start while the
  // application still runs: the one the application's own span.end() started can hold the exit
  // for one exporter timeout (set to 3 s here), never one per batch as before (4 batches: 12 s).
  it.each([
    ['refuses the connection', 1, 'refused', 0],
    ['accepts and never answers', 1, 'hanging', 0],
    ['refuses the connection (2,000 checkouts)', 2_000, 'refused', 3_000],
    ['accepts and never answers (2,000 checkouts)', 2_000, 'hanging', 3_000],
  ] as const)(
    'a collector that %s: at most 1.5 s (+ one exporter timeout) added to the exit, one line on stderr saying where and why',
    async (_title, checkouts, collector, exporterTimeoutMs) => {
      const endpoint = collector === 'refused' ? await closedEndpoint() : await hangingEndpoint((server) => (hanging = server));
      const env: Record<string, string> = { FIXTURE_CHECKOUTS: String(checkouts), OTEL_EXPORTER_OTLP_ENDPOINT: endpoint };
      if (exporterTimeoutMs > 0) env['OTEL_EXPORTER_OTLP_TIMEOUT'] = String(exporterTimeoutMs);
      const withoutEntry = await exitDelay([EXIT_APP], env);
      const withEntry = await exitDelay(['-r', REGISTER, EXIT_APP], env);

      for (const { run } of [withoutEntry, withEntry]) expectNormalRun(run, `register-exit-app: done ${checkouts}`);
      const added = withEntry.ms - withoutEntry.ms;
      expect(added, `${withEntry.run.context}exit took ${Math.round(withEntry.ms)} ms vs ${Math.round(withoutEntry.ms)} ms without the entry`).toBeLessThanOrEqual(
        EXIT_BOUND_MS + exporterTimeoutMs + CI_SLACK_MS,
      );
      process.stdout.write(`[exit timing] ${_title}: +${Math.round(added)} ms\n`);
      // Never answering: "no answer within <N> ms", or, when an export that started while the
      // application ran hit its timeout, "no answer before the exporter timed out".
      const why = collector === 'refused' ? 'connection refused (ECONNREFUSED)' : 'no answer ';
      expect(stderrLines(withEntry.run), withEntry.run.context).toEqual([
        expect.stringMatching(new RegExp(`telemetry was not delivered to ${escapeRegExp(endpoint)}/v1/(traces|metrics): ${escapeRegExp(why)}`)),
      ]);
    },
    90_000,
  );
});

describe('register entry: -e, -p and stdin programs', () => {
  it.each([
    ['-r with -e', ['-r', REGISTER], ['-e', EVAL_PROGRAM], {}, undefined],
    ['-r with -p', ['-r', REGISTER], ['-p', `${EVAL_PROGRAM}; 'printed'`], {}, undefined],
    ['NODE_OPTIONS="-r …" with -e', [], ['-e', EVAL_PROGRAM], { NODE_OPTIONS: `-r ${REGISTER}` }, undefined],
    ['--import with -e', ['--import', REGISTER], ['-e', EVAL_PROGRAM], {}, undefined],
    ['-r with the program on stdin', ['-r', REGISTER], [], {}, EVAL_PROGRAM],
    ['-r with "-" and the program on stdin', ['-r', REGISTER], ['-'], {}, EVAL_PROGRAM],
  ] as const)('%s: exits 0, output as without the entry, the checkout recorded', async (_title, entry, program, env, stdin) => {
    const options = stdin === undefined ? {} : { stdin };
    const withoutEntry = await runNode(program, {}, options);
    const run = await runNode([...entry, ...program], env, options);

    expect(withoutEntry.code, withoutEntry.context).toBe(0);
    expect(stdoutLines(withoutEntry), withoutEntry.context).toContain('eval: ok');
    expect(run.code, run.context).toBe(0);
    expect(stdoutLines(run), run.context).toEqual(stdoutLines(withoutEntry));
    expect(run.stderr, run.context).toBe('');
    const spans = receiver.spans();
    const request = spans.find((span) => span.name === 'eval request');
    const checkout = checkoutFrom(spans, undefined);
    expect(request, run.context).toBeDefined();
    expect(checkout?.parentSpanId, run.context).toBe(request?.spanId);
  });
});

describe('register entry: a second @opentelemetry/api copy', () => {
  it('an older copy registered first, which ours cannot see: one line on stderr naming both versions, the app unaffected', async () => {
    const run = await runNode(['-r', './test/fixtures/register-older-api-first.cjs', '-r', REGISTER, CJS_APP]);

    expectNormalRun(run, CJS_RESULT);
    const lines = stderrLines(run);
    expect(lines, run.context).toHaveLength(1);
    expect(lines[0], run.context).toContain('uses @opentelemetry/api 1.10.0');
    expect(lines[0], run.context).toContain('registered through @opentelemetry/api 1.9.1');
    expect(lines[0], run.context).toContain('npm ls @opentelemetry/api');
  });
});

/** Starts the app in its "wait" scenario, sends `signal` once it is ready, and waits for the end. */
async function signalWaitingApp(args: readonly string[], signal: NodeJS.Signals, env: Record<string, string> = {}): Promise<Ended> {
  const app = startApp(args, { FIXTURE_SCENARIO: 'wait', ...env });
  await app.stdoutLine('register-app: ready');
  app.kill(signal);
  return app.ended;
}

function runNode(args: readonly string[], env: Record<string, string> = {}, options: Pick<NodeOptions, 'cwd' | 'stdin'> = {}): Promise<Ended> {
  return startApp(args, env, options).ended;
}

/** An app with the test server, the receiver as OTLP endpoint, and the test's service name. */
function startApp(args: readonly string[], env: Record<string, string>, options: Pick<NodeOptions, 'cwd' | 'stdin'> = {}): RunningNode {
  return startNode(args, {
    ...options,
    timeoutMs: RUN_TIMEOUT_MS,
    env: { ...postgresEnv(), OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: SERVICE_NAME, ...env },
  });
}

/** How long the exit app took to end after printing that its work was done. */
async function exitDelay(args: readonly string[], env: Record<string, string>): Promise<{ run: Ended; ms: number }> {
  const app = startApp(args, env);
  await app.stdoutLine(`register-exit-app: done ${env['FIXTURE_CHECKOUTS']}`);
  const done = performance.now();
  const run = await app.ended;
  return { run, ms: performance.now() - done };
}

/** A loopback endpoint nothing listens on: connections are refused. */
async function closedEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A loopback endpoint that accepts connections and never answers. */
async function hangingEndpoint(keep: (hanging: { server: Server; sockets: Set<Socket> }) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    socket.on('error', () => {});
    sockets.add(socket);
  });
  keep({ server, sockets });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function stderrLines(run: Ended): string[] {
  return run.stderr.split('\n').filter((line) => line.trim() !== '');
}

function scopesOf(spans: readonly ReceivedSpan[]): Set<string> {
  return new Set(spans.map((span) => span.scope));
}

/** The checkout from `functionName` has the HTTP server span of instrumentation-http above it, in its trace. */
function expectServerSpanAbove(run: Ended, functionName: string): void {
  const spans = receiver.spans();
  const checkout = checkoutFrom(spans, functionName);
  if (checkout === undefined) return expect.fail(`${run.context}no "${CHECKOUT}" span from ${functionName}`);
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  const ancestors: ReceivedSpan[] = [];
  for (let parent = byId.get(checkout.parentSpanId ?? ''); parent !== undefined; parent = byId.get(parent.parentSpanId ?? '')) ancestors.push(parent);
  const server = ancestors.find((span) => span.kind === OTLP_SPAN_KIND_SERVER && span.scope === '@opentelemetry/instrumentation-http');
  expect(server, `${run.context}ancestors of the checkout: ${ancestors.map((span) => span.name).join(' ← ') || '(none)'}`).toBeDefined();
  expect(server?.traceId, run.context).toBe(checkout.traceId);
}

function stdoutLines(run: Ended): string[] {
  return run.stdout.split('\n').filter((line) => line !== '');
}

/** Exit code 0 and the app's own result as the only stdout output. */
function expectNormalRun(run: Ended, result: string): void {
  expect(run.signal, run.context).toBeNull();
  expect(run.code, run.context).toBe(0);
  expect(stdoutLines(run), `${run.context}stdout must be exactly the app's result`).toEqual([result]);
}

/** Spans of pool-leak and the app: the request instrumentations' own spans are left out. */
function spanNames(): string[] {
  return receiver
    .spans()
    .filter((span) => !span.scope.startsWith(CONTRIB_SCOPE_PREFIX))
    .map((span) => span.name);
}

function isPoolMetric(name: string): boolean {
  return name.startsWith('db.client.connection.') || name.startsWith('pool.');
}

function requestSpan(run: Ended, spans: readonly ReceivedSpan[]): ReceivedSpan {
  const parents = spans.filter((span) => span.name === REQUEST_SPAN);
  expect(parents, `${run.context}spans named "${REQUEST_SPAN}"`).toHaveLength(1);
  return parents[0]!;
}

/** The checkout span from `functionName`; with undefined, the one checkout span there is. */
function checkoutFrom(spans: readonly ReceivedSpan[], functionName: string | undefined): ReceivedSpan | undefined {
  return spans.find((span) => span.name === CHECKOUT && (functionName === undefined || span.attributes['code.function.name'] === functionName));
}

/** instrumentation-pg's span around pg-pool's `connect`. */
const CONTRIB_POOL_CONNECT = 'pg-pool.connect';

/**
 * The span a checkout belongs under: its parent, or, when the bundle's instrumentation-pg wrapped
 * around ours and its `pg-pool.connect` span was active as ours started (the checkout then nests
 * in it), that span's parent.
 */
function requestParentOf(span: ReceivedSpan, spans: readonly ReceivedSpan[]): string | undefined {
  const direct = spans.find((candidate) => candidate.spanId === span.parentSpanId);
  return direct?.name === CONTRIB_POOL_CONNECT ? direct.parentSpanId : span.parentSpanId;
}

/** One completed checkout span per function, each a child of the app's request span. */
function expectCheckouts(run: Ended, spans: readonly ReceivedSpan[], functions: readonly string[], file: string): void {
  const check = (actual: unknown, what: string) => expect(actual, `${run.context}${what}`);
  const parent = requestSpan(run, spans);
  for (const functionName of functions) {
    const span = checkoutFrom(spans, functionName);
    if (span === undefined) {
      expect.fail(`${run.context}no "${CHECKOUT}" span from ${functionName}; spans: ${spans.map((s) => s.name).join(', ')}`);
    }
    const what = `${functionName}'s checkout: `;
    check(span.kind, `${what}kind`).toBe(OTLP_SPAN_KIND_INTERNAL);
    check(requestParentOf(span, spans), `${what}parent`).toBe(parent.spanId);
    check(span.traceId, `${what}trace`).toBe(parent.traceId);
    const filePath = String(span.attributes['code.file.path']);
    check(isAbsolute(filePath) && basename(filePath), `${what}code.file.path`).toBe(file);
    check(span.attributes['code.stacktrace'], `${what}code.stacktrace`).toContain(functionName);
    check(span.attributes['pool.library'], `${what}pool.library`).toBe('pg-pool');
    check(span.attributes['pool.held_ms'], `${what}pool.held_ms`).toBeTypeOf('number');
    check(span.events.map((event) => event.name), `${what}events`).toContain('pool.acquired');
    check(span.status.code, `${what}status`).not.toBe(OTLP_STATUS_ERROR);
  }
}

/** The never-released lease: ended by the SDK's shutdown with ERROR, and exported. */
function expectLeakEndedAtShutdown(run: Ended, spans: readonly ReceivedSpan[]): void {
  const leak = checkoutFrom(spans, 'leakOnPurpose');
  if (leak === undefined) return expect.fail(`${run.context}the leaked lease's checkout span was not exported`);
  expect(leak.status, run.context).toEqual({ code: OTLP_STATUS_ERROR, message: LEAK_STATUS_MESSAGE });
  expect(requestParentOf(leak, spans), run.context).toBe(requestSpan(run, spans).spanId);
  expect(leak.attributes['code.stacktrace'], run.context).toContain('leakOnPurpose');
}
