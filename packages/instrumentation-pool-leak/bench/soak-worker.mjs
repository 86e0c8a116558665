// Child process of soak.mjs: runs one scenario, plain or instrumented, and sends its numbers
// back over IPC. Usage (from the parent only): fork(this file, [scenario, 'plain' | 'instrumented'])
// with --expose-gc, and POOL_LEAK_SOAK_CONNECTION set for the scenarios that need PostgreSQL.
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const [scenarioName, mode] = process.argv.slice(2);
// 'reference': instrumented, leak detection off: what the same heap costs the loop without sweeps.
const instrumented = mode === 'instrumented' || mode === 'reference';

const SCENARIOS = { cycles, openLeases, openLeasesFifo: (tracing) => openLeases(tracing, true), expiry, storm, churn, callSites };

/** Pool create/end rounds before the first heap sample: pg, the driver and the JIT warm up. */
const CHURN_WARMUP_ROUNDS = 200;
/** Rounds measured after the warm-up; the heap is sampled every `CHURN_SAMPLE_EVERY`. */
const CHURN_ROUNDS = 1000;
const CHURN_SAMPLE_EVERY = 100;

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`[soak worker] ${scenarioName}/${mode} failed: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);

async function main() {
  const scenario = SCENARIOS[scenarioName];
  if (scenario === undefined) throw new Error(`unknown scenario ${scenarioName}`);
  const tracing = registerTracing();
  const results = await scenario(tracing);
  await new Promise((resolve) => process.send({ scenario: scenarioName, mode, results }, resolve));
}

/** The real SDK with a span processor whose exporter only counts, and our instrumentation. */
function registerTracing() {
  const { context, trace } = require('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
  const { SimpleSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');
  const counts = new Map();
  const exporter = {
    export(spans, done) {
      for (const span of spans) counts.set(span.name, (counts.get(span.name) ?? 0) + 1);
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  let instrumentation;
  const instrument = (config = {}) => {
    if (!instrumented) return;
    const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
    instrumentation = new PoolLeakInstrumentation(config);
    instrumentation.setTracerProvider(provider);
  };
  return { instrument, spans: (name) => counts.get(name) ?? 0, instrumentation: () => instrumentation };
}

function heapAfterGc() {
  for (let round = 0; round < 3; round++) globalThis.gc();
  return process.memoryUsage().heapUsed;
}

/**
 * Growth of the heap after GC over the run: the largest later sample against the first (taken
 * after warm-up). A heap that shrinks (V8 flushing cold bytecode) is flat, not growing.
 */
function heapTrend(samples) {
  const first = samples[0];
  const growthPct = ((Math.max(...samples.slice(1)) - first) / first) * 100;
  return { firstMb: first / 1e6, lastMb: samples.at(-1) / 1e6, growthPct, samplesMb: samples.map((sample) => Math.round(sample / 1e4) / 100) };
}

function tick() {
  return new Promise((resolve) => setImmediate(resolve));
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function inMemoryPool(options) {
  const genericPool = require('generic-pool');
  let nextId = 0;
  return genericPool.createPool(
    { create: async () => ({ id: nextId++ }), destroy: async () => {} },
    options,
  );
}

/** ns per acquire/release cycle over `count` cycles, run one after the other. */
async function cycleCost(pool, count, acquire = (p) => p.acquire()) {
  const started = process.hrtime.bigint();
  for (let index = 0; index < count; index++) {
    const resource = await acquire(pool, index);
    await pool.release(resource);
  }
  return Number(process.hrtime.bigint() - started) / count;
}

/** 1 M checkout cycles; heap after GC every 100 000. */
async function cycles(tracing) {
  tracing.instrument();
  const pool = inMemoryPool({ max: 4 });
  const samples = [];
  const total = 1_000_000;
  const every = 100_000;
  for (let done = 0; done < total; done += every) {
    await cycleCost(pool, every);
    samples.push(heapAfterGc());
  }
  await pool.drain();
  await pool.clear();
  // The first sample is after warm-up (JIT, caches); flat means the rest stay within 5 % of it.
  return heapTrend(samples);
}

/** 100 000 open leases: retained bytes; and cycle cost before and after they are released. */
async function openLeases(tracing, fifo = false) {
  tracing.instrument();
  const open = 100_000;
  // Resources created by the pool itself first (min), so the measured growth is the leases only.
  // LIFO: the measured cycles reuse one resource, as a pool under light load does.
  // FIFO (fifo: true): every cycle takes the resource idle longest, as a busy pool does.
  const pool = inMemoryPool({ max: open, min: open, fifo });
  while (pool.available < open) await delay(10);
  await cycleCost(pool, 50_000);
  const before = await cycleCost(pool, 100_000);
  const heapBefore = heapAfterGc();
  const held = [];
  for (let index = 0; index < open; index++) held.push(await pool.acquire());
  const heapHeld = heapAfterGc();
  const spanHeld = tracing.spans("generic-pool checkout");
  const leasesHeld = tracing.instrumentation()?.["core"]?.openLeaseCount ?? 0;
  for (const resource of held) await pool.release(resource);
  held.length = 0;
  heapAfterGc();
  await cycleCost(pool, 50_000);
  const after = await cycleCost(pool, 100_000);
  await pool.drain();
  await pool.clear();
  return { bytesPerLease: (heapHeld - heapBefore) / open, leasesHeld, spanHeld, heapAfter: heapAfterGc() - heapBefore, cycleBeforeNs: before, cycleAfterNs: after };
}

/** 100 000 leases crossing a 1 s threshold: max event-loop delay until all are reported. */
async function expiry(tracing) {
  tracing.instrument({ leakThresholdMs: mode === 'reference' ? 0 : 1000 });
  const open = 100_000;
  const pool = inMemoryPool({ max: open });
  const warm = [];
  for (let index = 0; index < open; index++) warm.push(pool.acquire());
  const resources = await Promise.all(warm);
  for (const resource of resources) await pool.release(resource);
  const held = await Promise.all(Array.from({ length: open }, () => pool.acquire()));
  // The set-up's garbage is collected first: the window measures the sweeps, not the set-up.
  heapAfterGc();
  const monitor = monitorEventLoopDelay({ resolution: 1 });
  monitor.enable();
  const started = performance.now();
  const leakSpan = 'generic-pool leak';
  const watching = mode === 'instrumented';
  while (watching ? tracing.spans(leakSpan) < open && performance.now() - started < 30_000 : performance.now() - started < 5_000) {
    await delay(5);
  }
  monitor.disable();
  const reported = tracing.spans(leakSpan);
  for (const resource of held) await pool.release(resource);
  await pool.drain();
  await pool.clear();
  return { maxDelayMs: monitor.max / 1e6, reported, elapsedMs: performance.now() - started };
}

/** Storms per process: the first runs on a cold process (JIT, heap sizing), the rest warm. */
const STORM_ROUNDS = 4;

/**
 * 20 000 waiters timing out on a pool whose 2 connections are held, `STORM_ROUNDS` times. A
 * storm ends when every waiter has failed and, instrumented, every checkout span has ended (the
 * failure queue finishes some on later turns): the time the process spends on it.
 */
async function storm(tracing) {
  tracing.instrument();
  const waiters = 20_000;
  const spanName = 'generic-pool checkout';
  const pool = inMemoryPool({ max: 2, acquireTimeoutMillis: 200 });
  const held = [await pool.acquire(), await pool.acquire()];
  const monitor = monitorEventLoopDelay({ resolution: 1 });
  const rounds = [];
  for (let round = 0; round < STORM_ROUNDS; round++) {
    const spansBefore = tracing.spans(spanName);
    monitor.enable();
    const started = performance.now();
    const settled = [];
    // They arrive as requests do, a few hundred per turn of the loop, not in one synchronous burst.
    for (let index = 0; index < waiters; index++) {
      settled.push(pool.acquire().then(() => 'granted', () => 'failed'));
      if (index % 500 === 499) await tick();
    }
    const outcomes = await Promise.all(settled);
    while (instrumented && tracing.spans(spanName) - spansBefore < waiters && performance.now() - started < 60_000) await tick();
    const elapsedMs = performance.now() - started;
    monitor.disable();
    rounds.push({ elapsedMs, failed: outcomes.filter((outcome) => outcome === 'failed').length, spans: tracing.spans(spanName) - spansBefore });
  }
  for (const resource of held) await pool.release(resource);
  await pool.drain();
  await pool.clear();
  const warm = rounds.slice(1).map((round) => round.elapsedMs).sort((a, b) => a - b);
  return {
    coldMs: rounds[0].elapsedMs,
    warmMs: warm[Math.floor(warm.length / 2)],
    roundsMs: rounds.map((round) => Math.round(round.elapsedMs)),
    maxDelayMs: monitor.max / 1e6,
    failed: rounds.reduce((sum, round) => sum + round.failed, 0),
    spans: rounds.reduce((sum, round) => sum + round.spans, 0),
  };
}

/**
 * Rounds of: pg pool created, one client held, 20 checkouts queued, pool ended, dropped. The
 * same warm-up for plain and instrumented; the first heap sample is taken right after it.
 */
async function churn(tracing) {
  tracing.instrument();
  const connection = JSON.parse(process.env.POOL_LEAK_SOAK_CONNECTION ?? 'null');
  if (connection === null) throw new Error('POOL_LEAK_SOAK_CONNECTION is not set');
  const { Pool } = require('pg');
  const samples = [];
  const round = async () => {
    const pool = new Pool({ ...connection, max: 1 });
    const client = await pool.connect();
    for (let index = 0; index < 20; index++) pool.connect().catch(() => undefined);
    const ended = pool.end();
    client.release();
    await ended;
  };
  const sample = async () => {
    await delay(10);
    samples.push(heapAfterGc());
    // FinalizationRegistry callbacks run after a collection, in a later task.
    await delay(10);
  };
  for (let index = 0; index < CHURN_WARMUP_ROUNDS; index++) await round();
  await sample();
  for (let index = 1; index <= CHURN_ROUNDS; index++) {
    await round();
    if (index % CHURN_SAMPLE_EVERY === 0) await sample();
  }
  await delay(50);
  heapAfterGc();
  await delay(50);
  const core = tracing.instrumentation()?.['core'];
  return { ...heapTrend(samples), openLeases: core?.openLeaseCount ?? 0, warmupRounds: CHURN_WARMUP_ROUNDS, rounds: CHURN_ROUNDS };
}

/** Checkout cost from 2 000 distinct call sites in turn, against one call site. */
async function callSites(tracing) {
  tracing.instrument();
  const sites = 2000;
  const dir = mkdtempSync(join(tmpdir(), 'pool-leak-soak-'));
  const file = join(dir, 'call-sites.cjs');
  const lines = [];
  for (let index = 0; index < sites; index++) lines.push(`exports.s${index} = function takeAt${index}(pool) { return pool.acquire(); };`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  const takers = Object.values(require(file));
  const pool = inMemoryPool({ max: 4 });
  const one = (p) => takers[0](p);
  const many = (p, index) => takers[index % sites](p);
  await cycleCost(pool, 20_000, one);
  await cycleCost(pool, 20_000, many);
  const oneNs = await cycleCost(pool, 100_000, one);
  const manyNs = await cycleCost(pool, 100_000, many);
  await pool.drain();
  await pool.clear();
  return { oneSiteNs: oneNs, manySitesNs: manyNs };
}
