// The zero-code entry:
//   node --import opentelemetry-instrumentation-pool-leak/register app.mjs
//   node -r opentelemetry-instrumentation-pool-leak/register app.js
// Starts a NodeSDK (OTLP/HTTP protobuf traces and metrics, configured by the standard OTEL_*
// variables, which NodeSDK reads itself) with PoolLeakInstrumentation and, for request parents,
// the application's auto-instrumentations-node (else its instrumentation-http); registers the ESM
// loader hook for the patched modules, and flushes when the process ends, without making the
// exit wait on a collector that is not there. It never throws into the application and writes
// nothing on stdout.
import { diag, metrics, trace, type TracerProvider } from '@opentelemetry/api';
import { registerInstrumentations, type Instrumentation } from '@opentelemetry/instrumentation';
import type * as SdkNode from '@opentelemetry/sdk-node';
import { isInternalThread } from 'node:worker_threads';
import { describeApiMismatch, findApiMismatch } from './api-compat';
import { PoolLeakInstrumentation } from '../instrumentation';
import { describeUndelivered, releaseExportsAtExit, watchDelivery } from './delivery';
import { instrumentationSelected, sdkDisabled } from './env';
import { loaderIncludes, registerLoaderHook, type HookedModule } from './loader-hook';
import { requestParents, type RequestParents } from './request-parents';
import { flushOnExit } from './shutdown';
import { PACKAGE_NAME } from '../version';

const ENTRY = 'opentelemetry-instrumentation-pool-leak/register';
const SDK_PACKAGE = '@opentelemetry/sdk-node';
/**
 * How long the exit (a normal one, or after a signal nobody else handles) waits for the shutdown
 * once the exports have made no progress for this long (none delivered, no first try sent). A loopback or LAN collector answers a batch in
 * milliseconds; one that refused, kept silent or answered 429/503 for a second will not deliver
 * within the exporters' 10 s timeout and five retries either (measured: a short script took
 * 8.5 s to exit with nothing listening, 2,000 checkouts 32-34 s, a collector answering 503 ~42 s;
 * SIGTERM with nothing listening 5 s when the signal waited for a fixed 5 s).
 */
const EXIT_IDLE_TIMEOUT_MS = 1_000;
/**
 * The longest the exit waits while exports keep making progress: an orchestrator's grace period
 * (Kubernetes: 30 s) is for the application itself, not for a slow collector.
 */
const EXIT_MAX_WAIT_MS = 5_000;
/**
 * Set on the global object by the first register entry that starts: a second one (the entry in
 * both NODE_OPTIONS and the command line, or two installed copies) would start a second SDK and
 * register this instrumentation twice.
 */
const STARTED = Symbol.for('opentelemetry-instrumentation-pool-leak/register.started');

function start(): void {
  // `-r` preloads also run in Node's loader-hook thread, which registering the loader hook below
  // creates: an SDK started there would be a second one, and a second hook registration makes
  // import-in-the-middle warn. (Measured on Node 24.21; `--import` preloads do not run there.)
  if (isInternalThread === true) return;
  const processWide = globalThis as Record<symbol, unknown>;
  if (processWide[STARTED] === true) return;
  processWide[STARTED] = true;
  if (sdkDisabled()) return;
  const sdkNode = loadSdkNode();
  if (sdkNode === undefined) return;

  // NodeSDK's constructor installs the diag console logger when OTEL_LOG_LEVEL is set. The
  // instrumentations report malformed settings from their own constructors, so they are
  // created after the SDK, and registered once the SDK has set the global providers. (Passing
  // them to NodeSDK would mean creating them first, and those warnings would go nowhere.)
  // Where a request-parent instrumentation and ours patch the same method (instrumentation-pg
  // and ours on pg-pool's connect), both wrappers stay in either order (patcher.ts).
  const sdk = new sdkNode.NodeSDK();
  const parents = startRequestParents();
  const instrumentation = instrumentationSelected() ? new PoolLeakInstrumentation() : undefined;
  sdk.start();
  releaseExportsAtExit();
  // From the start: exports that failed while the application ran count at the exit too.
  const delivery = watchDelivery();
  flushOnExit({
    flush: flushGlobalProviders,
    shutdown: () => sdk.shutdown(),
    idleTimeoutMs: EXIT_IDLE_TIMEOUT_MS,
    maxWaitMs: EXIT_MAX_WAIT_MS,
    lastProgressAt: () => delivery.lastProgressAt(),
    onError: (what, error) => diag.error(`${ENTRY}: ${what} failed`, error),
    onEnd: (outcome) => {
      const line = describeUndelivered(outcome, delivery.undelivered(!outcome.settled));
      if (line !== undefined) writeStderr(`${ENTRY}: ${line}`);
    },
  });
  if (parents.hint !== undefined) writeStderr(`${ENTRY}: ${parents.hint}`);
  diag.debug(`${ENTRY}: request parents from ${parents.source}`);

  const ours = instrumentation !== undefined && instrumentation.getConfig().enabled !== false ? [instrumentation] : [];
  if (instrumentation !== undefined) {
    // The SDK registered through its API copy; ours must see it, or every checkout is an orphan.
    const mismatch = findApiMismatch();
    if (mismatch !== undefined) writeStderr(`${ENTRY}: ${describeApiMismatch(mismatch)}`);
  }
  const instrumentations: Instrumentation[] = [...parents.instrumentations, ...(instrumentation === undefined ? [] : [instrumentation])];
  if (instrumentations.length === 0) return;
  registerInstrumentations({ instrumentations });
  // Disabled (OTEL_POOL_LEAK_ENABLED=false): ours patches nothing, so it needs no hook.
  const modules = [...parents.instrumentations, ...ours].flatMap(modulesOf);
  if (modules.length === 0) return;
  const outcome = registerLoaderHook(loaderIncludes(modules));
  if (outcome === 'already-on-command-line') {
    diag.debug(`${ENTRY}: the OpenTelemetry loader hook is already on the command line; not registering it again`);
  } else if (outcome === 'skipped-for-eval') {
    diag.debug(`${ENTRY}: -e / -p program: no ES-module loader hook (required modules are still patched)`);
  }
}

/** The request-parent instrumentations; none (after one stderr line) if loading them fails. */
function startRequestParents(): RequestParents {
  try {
    return requestParents(PACKAGE_NAME);
  } catch (error) {
    writeStderr(`${ENTRY}: starting the request instrumentations failed (${String(error)}); checkout spans will have no request parents.`);
    return { instrumentations: [], source: 'none' };
  }
}

/** The modules (and files inside them) an instrumentation patches (instrumentations of other packages may lack the method). */
function modulesOf(instrumentation: Instrumentation): HookedModule[] {
  const withDefinitions = instrumentation as Instrumentation & { getModuleDefinitions?: () => readonly HookedModule[] };
  try {
    return typeof withDefinitions.getModuleDefinitions === 'function'
      ? withDefinitions.getModuleDefinitions().map(({ name, files }) => ({ name, files: (files ?? []).map((file) => ({ name: file.name })) }))
      : [];
  } catch {
    return [];
  }
}

/** The SDK, or undefined (after one line on stderr) when the optional peer is not installed. */
function loadSdkNode(): typeof SdkNode | undefined {
  try {
    return require(SDK_PACKAGE) as typeof SdkNode;
  } catch (error) {
    if (!isNotFound(error, SDK_PACKAGE)) throw error;
    writeStderr(`${ENTRY}: ${SDK_PACKAGE} is not installed, so OpenTelemetry was not started; run \`npm install ${SDK_PACKAGE}\`.`);
    return undefined;
  }
}

/** A failed `require` of exactly `name` (not of something `name` itself requires). */
function isNotFound(error: unknown, name: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === 'MODULE_NOT_FOUND' && typeof message === 'string' && message.includes(`'${name}'`);
}

/**
 * forceFlush of the global tracer and meter providers: the SDK's, once it has started. NodeSDK
 * has no flush of its own, and its providers are private.
 */
async function flushGlobalProviders(): Promise<void> {
  // The global tracer provider is a proxy; the SDK's provider is its delegate.
  const proxy = trace.getTracerProvider() as TracerProvider & { getDelegate?: () => TracerProvider };
  const tracerProvider = typeof proxy.getDelegate === 'function' ? proxy.getDelegate() : proxy;
  await Promise.all([forceFlush(tracerProvider), forceFlush(metrics.getMeterProvider())]);
}

function forceFlush(provider: object): Promise<unknown> {
  const flush = (provider as { forceFlush?: unknown }).forceFlush;
  return typeof flush === 'function' ? Promise.resolve(flush.call(provider)) : Promise.resolve();
}

function writeStderr(line: string): void {
  try {
    process.stderr.write(`${line}\n`);
  } catch {
    // Nowhere left to report to; the application must not notice.
  }
}

try {
  start();
} catch (error) {
  // Failing telemetry must not stop the application, but the user asked for telemetry and should
  // learn why it is missing, with or without OTEL_LOG_LEVEL: stderr, not diag.
  writeStderr(`${ENTRY}: setting up OpenTelemetry failed (${String(error)}); the application continues.`);
}
