// The zero-code entry:
//   node --import opentelemetry-instrumentation-pool-leak/register app.mjs
//   node -r opentelemetry-instrumentation-pool-leak/register app.js
// Starts a NodeSDK (OTLP/HTTP protobuf traces and metrics, configured by the standard OTEL_*
// variables, which NodeSDK reads itself) with PoolLeakInstrumentation, registers the ESM loader
// hook for the pool libraries, and flushes when the process ends. It never throws into the
// application and writes nothing on stdout.
import { diag, metrics, trace, type TracerProvider } from '@opentelemetry/api';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import type * as SdkNode from '@opentelemetry/sdk-node';
import { isInternalThread } from 'node:worker_threads';
import { PoolLeakInstrumentation } from './instrumentation';
import { instrumentationSelected, sdkDisabled } from './register-env';
import { registerLoaderHook } from './register-loader-hook';
import { flushOnExit } from './register-shutdown';

const ENTRY = 'opentelemetry-instrumentation-pool-leak/register';
const SDK_PACKAGE = '@opentelemetry/sdk-node';
/**
 * Bound on the shutdown after a signal nobody else handles. The OTLP exporters' own timeout is
 * 10 s; an unreachable collector must not hold a SIGTERM'd process much beyond what an
 * orchestrator's grace period (Kubernetes: 30 s) allows for the application itself.
 */
const SIGNAL_SHUTDOWN_TIMEOUT_MS = 5_000;

function start(): void {
  // `-r` preloads also run in Node's loader-hook thread, which registering the loader hook below
  // creates: an SDK started there would be a second one, and a second hook registration makes
  // import-in-the-middle warn. (Measured on Node 24.21; `--import` preloads do not run there.)
  if (isInternalThread === true) return;
  if (sdkDisabled()) return;
  const sdkNode = loadSdkNode();
  if (sdkNode === undefined) return;

  // NodeSDK's constructor installs the diag console logger when OTEL_LOG_LEVEL is set. The
  // instrumentation reports malformed OTEL_POOL_LEAK_* values from its own constructor, so it is
  // created after the SDK, and registered once the SDK has set the global providers. (Passing it
  // to NodeSDK would mean creating it first, and those warnings would go nowhere.)
  const sdk = new sdkNode.NodeSDK();
  const instrumentation = instrumentationSelected() ? new PoolLeakInstrumentation() : undefined;
  sdk.start();
  flushOnExit({
    flush: flushGlobalProviders,
    shutdown: () => sdk.shutdown(),
    signalTimeoutMs: SIGNAL_SHUTDOWN_TIMEOUT_MS,
    onError: (what, error) => diag.error(`${ENTRY}: ${what} failed`, error),
  });
  if (instrumentation === undefined) return;
  registerInstrumentations({ instrumentations: [instrumentation] });
  // Disabled (OTEL_POOL_LEAK_ENABLED=false): nothing will be patched, so no hook either.
  if (instrumentation.getConfig().enabled === false) return;
  const moduleNames = instrumentation.getModuleDefinitions().map((definition) => definition.name);
  if (registerLoaderHook(moduleNames) === 'already-on-command-line') {
    diag.debug(`${ENTRY}: the OpenTelemetry loader hook is already on the command line; not registering it again`);
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
