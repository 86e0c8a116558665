// One column of cost-table.bench.mjs, in its own process: patching is process-wide.
import { createRequire } from 'node:module';
import { captureOneFrameAbove, libraryPath, suiteNamed } from './suites.mjs';

const require = createRequire(import.meta.url);
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
/** Spans a sampled request exports with no pool instrumentation: its own. */
const REQUEST_SPANS = 1;
/** The marker pool-leak's patcher puts on its own wrappers (a registered symbol, so readable here). */
const POOL_LEAK_WRAPPER = Symbol.for('opentelemetry-instrumentation-pool-leak.original');

/**
 * µs per cycle for each of `rows` ({ name, pool: 'generic-pool' | 'pg', shape, cycles }), measured
 * under `column`; `connection` is the PostgreSQL the pg rows check out from.
 */
export async function runColumn(column, rows, connection) {
  const unsampled = column.endsWith(':u');
  const kind = column.replace(/:u$/, '');
  const needsPg = rows.some((row) => row.pool === 'pg');
  if (needsPg && connection === null) throw new Error('the pg rows need POOL_LEAK_BENCH_CONNECTION; run cost-table.bench.mjs, which starts PostgreSQL');
  const tracing = kind === 'bare' || kind === 'floor' ? undefined : registerTracing(kind, unsampled, needsPg);

  // Required only now: an instrumentation patches a library as it is loaded.
  const genericPool = require('generic-pool');
  let next = 0;
  const pool = genericPool.createPool({ create: async () => ({ id: next++ }), destroy: async () => {} }, { max: 4, min: 4 });
  if (kind === 'floor') addFloorCapture(pool, 'acquire');
  // Opened when its row comes: an idle pg client closes after pg's 10 s idle timeout.
  let pgPool;
  const library = libraryPath();
  const shapes = {
    'generic-pool direct': async () => pool.release(await pool.acquire()),
    'generic-pool library path': async () => pool.release(await library.acquireThrough(pool)),
    // Released straight away: the idle cycle, no statement.
    'pg idle': async () => (await pgPool.connect()).release(),
  };
  // A row's `prelude`, run once before its warm-up. A library polling the pool from its own
  // callback, with no application frame on the stack, used to widen every later unsampled capture
  // at pg-pool's `connect` to the frame cap: what it leaves behind lasts, so its row comes last.
  const preludes = {
    'library poll': async () => (await library.checkOutOnItsOwn(pgPool, 'connect')).release(),
  };
  const request = tracing?.request ?? ((work) => work());
  const results = {};
  try {
    for (const row of rows) {
      const work = shapes[row.shape];
      if (work === undefined) throw new Error(`row "${row.name}" has the unknown shape "${row.shape}"; known: ${Object.keys(shapes).join(', ')}`);
      if (row.pool === 'pg' && pgPool === undefined) pgPool = await openPgPool(kind, connection);
      const cycle = () => request(work);
      if (row.prelude !== undefined) {
        const prelude = preludes[row.prelude];
        if (prelude === undefined) throw new Error(`row "${row.name}" has the unknown prelude "${row.prelude}"; known: ${Object.keys(preludes).join(', ')}`);
        await prelude();
      }
      for (let index = 0; index < row.cycles / 5; index++) await cycle();
      const exportedBefore = tracing?.exported() ?? 0;
      const started = process.hrtime.bigint();
      for (let index = 0; index < row.cycles; index++) await cycle();
      results[row.name] = Number(process.hrtime.bigint() - started) / row.cycles / 1000;
      if (tracing !== undefined) checkSpans(row.name, column, kind, unsampled, (tracing.exported() - exportedBefore) / row.cycles);
    }
  } finally {
    await pool.drain();
    await pool.clear();
    if (pgPool !== undefined) await suiteNamed('pg-pool').close(pgPool);
  }
  return results;
}

/**
 * The real SDK and the column's instrumentation, constructed before any pool library is loaded;
 * `request(work)` runs `work` inside a request span whose remote parent is sampled or not.
 */
function registerTracing(kind, unsampled, needsPg) {
  const api = require('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
  const { SimpleSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');
  let exported = 0;
  const exporter = {
    export: (spans, done) => {
      exported += spans.length;
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.trace.setGlobalTracerProvider(provider);
  const instrumentations = [];
  if (kind === 'contrib') {
    // Each row's own contrib instrumentation; neither touches the other's library.
    const { GenericPoolInstrumentation } = require('@opentelemetry/instrumentation-generic-pool');
    instrumentations.push(new GenericPoolInstrumentation());
    if (needsPg) {
      const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg');
      instrumentations.push(new PgInstrumentation());
    }
  } else if (kind === 'ours' || kind === 'ours stacks off') {
    const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
    instrumentations.push(new PoolLeakInstrumentation(kind === 'ours' ? {} : { stackFrames: 0 }));
  }
  for (const instrumentation of instrumentations) instrumentation.setTracerProvider(provider);
  const tracer = provider.getTracer('cost-table');
  // A request arriving with a traceparent: flags 01 (sampled) or 00 (not), as a server would see it.
  const parent = api.trace.setSpanContext(api.ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: '00f067aa0ba902b7',
    traceFlags: unsampled ? api.TraceFlags.NONE : api.TraceFlags.SAMPLED,
    isRemote: true,
  });
  const request = (work) =>
    tracer.startActiveSpan('request', {}, parent, async (span) => {
      try {
        return await work();
      } finally {
        span.end();
      }
    });
  return { request, exported: () => exported };
}

/** pools.bench.mjs's pg.Pool (max 4, every connection opened and used once), checked and floored. */
async function openPgPool(kind, connection) {
  const pgPool = await suiteNamed('pg-pool').open(connection);
  // pg.Pool extends pg-pool's Pool, whose prototype holds `connect`, where instrumentations wrap it.
  const poolPrototype = Object.getPrototypeOf(require('pg').Pool.prototype);
  try {
    checkPgWrapping(kind, poolPrototype);
  } catch (error) {
    await suiteNamed('pg-pool').close(pgPool);
    throw error;
  }
  if (kind === 'floor') addFloorCapture(poolPrototype, 'connect');
  return pgPool;
}

/**
 * pg-pool's `connect` carries exactly the column's own wrapper: instrumentation-pg's in contrib,
 * ours in ours, none elsewhere. A second wrapper (a stray instrumentation-pg, one patch applied
 * twice) would be measured as part of the column without showing in the table.
 */
function checkPgWrapping(kind, poolPrototype) {
  const wrappers = [];
  for (let method = poolPrototype.connect; method?.__wrapped === true && wrappers.length < 16; method = method.__original) {
    wrappers.push(POOL_LEAK_WRAPPER in method ? 'ours' : 'contrib');
  }
  const expected = { contrib: ['contrib'], ours: ['ours'], 'ours stacks off': ['ours'] }[kind] ?? [];
  if (wrappers.join() !== expected.join()) {
    throw new Error(
      `column "${kind}": pg-pool's Pool.prototype.connect carries [${wrappers.join(', ')}], expected [${expected.join(', ')}]; ` +
        'an instrumentation is loaded or applied where the column does not ask for it',
    );
  }
}

/**
 * Sampled requests export the request span and, with an instrumentation, its checkout span;
 * unsampled ones export nothing. Another count means the column does not measure what it names.
 */
function checkSpans(row, column, kind, unsampled, perCycle) {
  const expected = unsampled ? 0 : kind === 'sdk' ? REQUEST_SPANS : REQUEST_SPANS + 1;
  if (Math.abs(perCycle - expected) > 0.01) {
    throw new Error(`row "${row}", column "${column}": ${perCycle.toFixed(3)} spans exported per cycle, expected ${expected}; the instrumentation did not patch the pool, or patched it twice`);
  }
}

/**
 * The floor: `target[method]` (the pool's checkout boundary), preceded by one 1-frame capture
 * above it with its position read.
 */
function addFloorCapture(target, method) {
  const original = target[method];
  target[method] = function checkoutWithFloor(...args) {
    captureOneFrameAbove(checkoutWithFloor);
    return original.apply(this, args);
  };
}
