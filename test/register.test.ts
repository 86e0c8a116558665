// The zero-code entry, `opentelemetry-instrumentation-pool-leak/register`, in real Node processes:
// fixture apps with no OpenTelemetry setup of their own, the BUILT package (`npm run build`
// first), the real PostgreSQL, and the loopback OTLP receiver as OTEL_EXPORTER_OTLP_ENDPOINT, so
// what is asserted is what the SDK's own OTLP/HTTP protobuf exporters sent.
import { basename, isAbsolute } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { postgresEnv, startNode, type Ended, type RunningNode } from './support/node-process';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver';

/** Well under vitest's testTimeout, so a hung app fails with its stderr instead of a bare timeout. */
const RUN_TIMEOUT_MS = 15_000;
const REGISTER = 'opentelemetry-instrumentation-pool-leak/register';
const ESM_APP = 'test/fixtures/register-app.mjs';
const CJS_APP = 'test/fixtures/register-app.cjs';
const ESM_RESULT = 'register-app: 1 2 3';
const CJS_RESULT = 'register-app: 1 2';
const REQUEST_SPAN = 'register-app request';
const CHECKOUT = 'pg-pool checkout';
const SERVICE_NAME = 'register-test-service';
// OTLP's enums, as the receiver decodes them (not the API's SpanKind numbering).
const OTLP_SPAN_KIND_INTERNAL = 1;
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
    const run = await runNode(['--import', REGISTER, ESM_APP], { OTEL_POOL_LEAK_ENABLED: 'false' });

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
    const run = await runNode(['-r', REGISTER, CJS_APP], { OTEL_TRACES_SAMPLER: 'always_off' });

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
    expect(checkoutFrom(spans, 'queryAfterWaiting')?.parentSpanId, run.context).toBe(afterWait?.spanId);
    // ...and shut down when the app's loop ran dry, ending the lease it never gave back.
    expectLeakEndedAtShutdown(run, spans);
  });
});

/** Starts the app in its "wait" scenario, sends `signal` once it is ready, and waits for the end. */
async function signalWaitingApp(args: readonly string[], signal: NodeJS.Signals, env: Record<string, string> = {}): Promise<Ended> {
  const app = startApp(args, { FIXTURE_SCENARIO: 'wait', ...env });
  await app.stdoutLine('register-app: ready');
  app.kill(signal);
  return app.ended;
}

function runNode(args: readonly string[], env: Record<string, string> = {}): Promise<Ended> {
  return startApp(args, env).ended;
}

/** An app with the test server, the receiver as OTLP endpoint, and the test's service name. */
function startApp(args: readonly string[], env: Record<string, string>): RunningNode {
  return startNode(args, {
    timeoutMs: RUN_TIMEOUT_MS,
    env: { ...postgresEnv(), OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: SERVICE_NAME, ...env },
  });
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

function spanNames(): string[] {
  return receiver.spans().map((span) => span.name);
}

function isPoolMetric(name: string): boolean {
  return name.startsWith('db.client.connection.') || name.startsWith('pool.');
}

function requestSpan(run: Ended, spans: readonly ReceivedSpan[]): ReceivedSpan {
  const parents = spans.filter((span) => span.name === REQUEST_SPAN);
  expect(parents, `${run.context}spans named "${REQUEST_SPAN}"`).toHaveLength(1);
  return parents[0]!;
}

function checkoutFrom(spans: readonly ReceivedSpan[], functionName: string): ReceivedSpan | undefined {
  return spans.find((span) => span.name === CHECKOUT && span.attributes['code.function.name'] === functionName);
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
    check(span.parentSpanId, `${what}parent`).toBe(parent.spanId);
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
  expect(leak.parentSpanId, run.context).toBe(requestSpan(run, spans).spanId);
  expect(leak.attributes['code.stacktrace'], run.context).toContain('leakOnPurpose');
}
