// One column of cost-table.bench.mjs, in its own process: patching is process-wide.
import { createRequire } from 'node:module';
import { libraryPath } from './suites.mjs';

const require = createRequire(import.meta.url);
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

/** µs per cycle for each row of `rows`, measured under `column`. */
export async function runColumn(column, rows, cycles) {
  const unsampled = column.endsWith(':u');
  const kind = column.replace(/:u$/, '');
  const api = require('@opentelemetry/api');
  let request = async (work) => work();
  if (kind !== 'bare' && kind !== 'floor') {
    const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
    const { SimpleSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');
    const exporter = { export: (spans, done) => done({ code: 0 }), shutdown: async () => {} };
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.trace.setGlobalTracerProvider(provider);
    let instrumentation;
    if (kind === 'contrib') {
      const { GenericPoolInstrumentation } = require('@opentelemetry/instrumentation-generic-pool');
      instrumentation = new GenericPoolInstrumentation();
    } else if (kind === 'ours' || kind === 'ours stacks off') {
      const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
      instrumentation = new PoolLeakInstrumentation(kind === 'ours' ? {} : { stackFrames: 0 });
    }
    instrumentation?.setTracerProvider(provider);
    const tracer = provider.getTracer('cost-table');
    // A request arriving with a traceparent: flags 01 (sampled) or 00 (not), as a server would see it.
    const parent = api.trace.setSpanContext(api.ROOT_CONTEXT, {
      traceId: TRACE_ID,
      spanId: '00f067aa0ba902b7',
      traceFlags: unsampled ? api.TraceFlags.NONE : api.TraceFlags.SAMPLED,
      isRemote: true,
    });
    request = (work) =>
      tracer.startActiveSpan('request', {}, parent, async (span) => {
        try {
          return await work();
        } finally {
          span.end();
        }
      });
  }
  const genericPool = require('generic-pool');
  let next = 0;
  const pool = genericPool.createPool({ create: async () => ({ id: next++ }), destroy: async () => {} }, { max: 4, min: 4 });
  if (kind === 'floor') addFloorCapture(pool);
  const library = libraryPath();
  const shapes = {
    [rows[0]]: () => pool.acquire(),
    [rows[1]]: () => library.acquireThrough(pool),
  };
  const results = {};
  for (const row of rows) {
    const acquire = shapes[row];
    const cycle = () => request(async () => pool.release(await acquire()));
    for (let index = 0; index < cycles / 5; index++) await cycle();
    const started = process.hrtime.bigint();
    for (let index = 0; index < cycles; index++) await cycle();
    results[row] = Number(process.hrtime.bigint() - started) / cycles / 1000;
  }
  await pool.drain();
  await pool.clear();
  return results;
}

/** The floor: the pool's acquire, preceded by one 1-frame capture above it with its position read. */
function addFloorCapture(pool) {
  const acquire = pool.acquire;
  const readPosition = (_error, sites) => `${sites[0]?.getScriptNameOrSourceURL()}:${sites[0]?.getLineNumber()}:${sites[0]?.getColumnNumber()}`;
  pool.acquire = function acquireWithFloor(...args) {
    const holder = {};
    const savedLimit = Error.stackTraceLimit;
    const savedPrepare = Error.prepareStackTrace;
    Error.stackTraceLimit = 1;
    Error.prepareStackTrace = readPosition;
    try {
      Error.captureStackTrace(holder, acquireWithFloor);
      void holder.stack;
    } finally {
      Error.prepareStackTrace = savedPrepare;
      Error.stackTraceLimit = savedLimit;
    }
    return acquire.apply(this, args);
  };
}
