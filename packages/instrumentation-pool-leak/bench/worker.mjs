// Child process of pools.bench.mjs: measures one variant of one suite and sends the numbers back
// over IPC. Usage (from the parent only): fork(this file, [suiteName, variantName]) with
// POOL_LEAK_BENCH_CONNECTION set to the server's address when the suite needs a server.
import { createRequire } from 'node:module';
import { Bench } from 'tinybench';
import { BASELINE, suiteNamed, variantOf } from './suites.mjs';

const require = createRequire(import.meta.url);

// Per task; POOL_LEAK_BENCH_TASK_MS shortens it for a quick look (the numbers get noisier).
const TIME_MS = Number(process.env.POOL_LEAK_BENCH_TASK_MS) > 0 ? Number(process.env.POOL_LEAK_BENCH_TASK_MS) : 1500;
const WARMUP_MS = Math.min(500, TIME_MS / 3);
// After the results are sent the process should end by itself; if something still holds the
// event loop, say so instead of letting the parent wait for its timeout.
const EXIT_GRACE_MS = 5000;

const suite = suiteNamed(process.argv[2]);
const variant = variantOf(suite, process.argv[3]);

async function main() {
  const connection = JSON.parse(process.env.POOL_LEAK_BENCH_CONNECTION ?? 'null');
  if (suite.server !== undefined && connection === null) {
    throw new Error('POOL_LEAK_BENCH_CONNECTION is not set; run pools.bench.mjs instead');
  }
  const tracing = registerTracing();
  // Constructed before the library is required: the patch is applied when require-in-the-middle sees it.
  const instrumentation = variant.instrument();
  // What registerInstrumentations / NodeSDK do; skips the global ProxyTracer on every span.
  instrumentation?.setTracerProvider(tracing.provider);
  // Opened warm (every connection or resource created once), so no measured checkout creates one.
  const pool = await suite.open(connection);
  try {
    const results = await measure(pool, tracing);
    await send({ suite: suite.name, variant: variant.name, results });
  } finally {
    await suite.close(pool);
    await tracing.provider.shutdown();
    instrumentation?.disable();
  }
}

/**
 * The real SDK path a span takes in production, minus the network: SimpleSpanProcessor hands
 * every ended span to an exporter that only counts it.
 */
function registerTracing() {
  const { context, trace } = require('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
  const { SimpleSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');
  const exporter = new CountingExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  return { provider, exporter };
}

class CountingExporter {
  spans = 0;

  export(spans, resultCallback) {
    this.spans += spans.length;
    resultCallback({ code: 0 }); // ExportResultCode.SUCCESS
  }

  shutdown() {
    return Promise.resolve();
  }
}

async function measure(pool, tracing) {
  const tracer = tracing.provider.getTracer('pool-leak-bench');
  const bench = new Bench({ time: TIME_MS, warmupTime: WARMUP_MS, throws: true });
  const counter = { iterations: 0 };
  const library = suite.library?.();
  for (const task of suite.tasks) {
    bench.add(task.name, task.bare === true ? task.run : asRequest(tracer, counter, () => task.run(pool, library)));
  }
  const spansPerIteration = new Map();
  for (const task of bench.tasks) {
    task.addEventListener('start', () => {
      counter.iterations = 0;
      tracing.exporter.spans = 0;
      progress(`${task.name} started`);
    });
    task.addEventListener('complete', () => {
      spansPerIteration.set(task.name, tracing.exporter.spans / Math.max(1, counter.iterations));
      const latency = task.result.latency;
      progress(`${task.name} done${latency ? `: ${(latency.mean * 1000).toFixed(1)} µs/op, ${latency.samplesCount} samples` : ''}`);
    });
  }
  progress('warming up');
  await bench.run();
  return bench.tasks.map((task) => summarize(task, spansPerIteration.get(task.name)));
}

/**
 * Wraps one iteration in an active parent span in every variant, the baseline included: a
 * checkout in production happens inside a sampled request, and the baseline must pay for that
 * span too, or the ratios would charge it to the instrumentation.
 */
function asRequest(tracer, counter, run) {
  return () =>
    tracer.startActiveSpan('bench request', async (span) => {
      try {
        await run();
      } finally {
        span.end();
        counter.iterations++;
      }
    });
}

function summarize(task, spansPerIteration) {
  const result = task.result;
  if (result.state !== 'completed') {
    throw new Error(`task "${task.name}" ${result.state}${result.error ? `: ${result.error.message}` : ''}`);
  }
  if (suite.tasks.find((candidate) => candidate.name === task.name)?.bare !== true) checkInstrumented(task.name, spansPerIteration);
  return {
    task: task.name,
    meanUs: result.latency.mean * 1000,
    spansPerIteration,
  };
}

/**
 * The baseline records one span per iteration (the request). An instrumented variant that
 * records no more did not patch the library, and its numbers would silently measure nothing.
 */
function checkInstrumented(taskName, spansPerIteration) {
  if (variant.name !== BASELINE && !(spansPerIteration > 1.5)) {
    throw new Error(
      `${taskName}: ${spansPerIteration?.toFixed(2)} spans per iteration; the instrumentation did not patch ${suite.name} ` +
        `(is OTEL_POOL_LEAK_ENABLED=false set, or was ${suite.name} loaded before the instrumentation?)`,
    );
  }
}

function send(message) {
  return new Promise((resolve, reject) => {
    if (process.send === undefined) reject(new Error('no IPC channel; run pools.bench.mjs instead'));
    else process.send(message, (error) => (error ? reject(error) : resolve()));
  });
}

function progress(line) {
  process.stderr.write(`[bench]   ${suite.name} / ${variant.name} × ${line}\n`);
}

function reportLingeringHandles() {
  const handles = process.getActiveResourcesInfo().join(', ');
  process.stderr.write(`[bench] warning: ${variant.name} worker still alive ${EXIT_GRACE_MS} ms after finishing (${handles}); exiting\n`);
  process.exit(0);
}

// Last, so that every class and constant above is initialised before it runs.
main().then(
  () => {
    process.disconnect?.();
    setTimeout(reportLingeringHandles, EXIT_GRACE_MS).unref();
  },
  (error) => {
    process.stderr.write(`[bench] ${variant.name}: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
