// Child process of soak.mjs: runs one scenario in one mode and sends its numbers back over IPC.
// Usage (from the parent only): fork(this file, [scenario, mode]) with --expose-gc, and
// POOL_LEAK_SOAK_CONNECTION set for the scenarios that need PostgreSQL. Modes:
//   plain         the real SDK registered, no pool instrumentation
//   instrumented  pool-leak
//   reference     pool-leak with leak detection off (expiry)
//   contrib       the contrib instrumentation of the scenario's library (storm, pgStorm)
//   sdkSpan       no pool instrumentation; a tiny wrapper holds one open SDK span per checkout
//                 (openLeases), with the attributes of POOL_LEAK_SOAK_SPAN_ATTRIBUTES
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const [scenarioName, mode] = process.argv.slice(2);
// 'reference': instrumented, leak detection off: what the same heap costs the loop without sweeps.
const instrumented = mode === 'instrumented' || mode === 'reference';
// Every mode but plain makes a span per checkout (or per waiter) that a storm waits for.
const traced = mode !== 'plain';

/** The expiry scenario's leak threshold, at least (see `expiry`). */
const EXPIRY_THRESHOLD_MS = 3000;
/** The expiry scenario's threshold while it sets up: none of its leases may cross it then. */
const SET_UP_THRESHOLD_MS = 3_600_000;
const SCENARIOS = {
  cycles,
  openLeases,
  openLeasesFifo: (tracing) => openLeases(tracing, true),
  expiry,
  storm,
  waiters,
  pgStorm,
  churn,
  callSites,
};

/** The span each mode makes per waiter, by scenario: what a storm counts until all have ended. */
const STORM_SPANS = {
  storm: { instrumented: 'generic-pool checkout', contrib: 'generic-pool.acquire' },
  pgStorm: { instrumented: 'pg-pool checkout', contrib: 'pg-pool.connect' },
};

/** Attributes a checkout span gets at release, not while it is open (they stay out of sdkSpan's). */
const RELEASE_ATTRIBUTES = new Set(['pool.wait_ms', 'pool.held_ms', 'pool.checkin.destroyed']);

/** Pool create/end rounds before the first heap sample: pg, the driver and the JIT warm up. */
const CHURN_WARMUP_ROUNDS = 200;
/** Rounds measured after the warm-up; the heap is sampled every `CHURN_SAMPLE_EVERY`. */
const CHURN_ROUNDS = 1000;
const CHURN_SAMPLE_EVERY = 100;

/** Every this many held checkouts, the request span is watched (WeakRef) for being collected. */
const REQUEST_SAMPLE_EVERY = 1000;

/** Storms per process: the first runs on a cold process (JIT, heap sizing), the rest warm. */
const STORM_ROUNDS = 4;
/** How long a waiter waits before its pool fails it (generic-pool and pg-pool storms alike). */
const STORM_TIMEOUT_MS = 200;
const STORM_WAITERS = 20_000;
/** pg-pool's waiters: each has its own timer and is removed from an array, so fewer of them. */
const PG_STORM_WAITERS = 5_000;

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

/**
 * The real SDK with a span processor whose exporter only counts (and keeps the last span of each
 * name, to read its attributes), and the mode's instrumentation.
 */
function registerTracing() {
  const { context, trace } = require('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
  const { SimpleSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');
  const counts = new Map();
  const lastSpans = new Map();
  const exporter = {
    export(spans, done) {
      for (const span of spans) {
        counts.set(span.name, (counts.get(span.name) ?? 0) + 1);
        lastSpans.set(span.name, span);
      }
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  let instrumentation;
  // `contrib` creates the contrib instrumentation of the scenario's library, for mode contrib.
  const instrument = (config = {}, contrib = undefined) => {
    if (mode === 'contrib') {
      if (contrib === undefined) throw new Error(`scenario ${scenarioName} has no contrib instrumentation to run`);
      instrumentation = contrib();
    } else if (instrumented) {
      const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
      instrumentation = new PoolLeakInstrumentation(config);
    } else return;
    instrumentation.setTracerProvider(provider);
  };
  return {
    instrument,
    tracer: provider.getTracer('pool-leak-soak'),
    spans: (name) => counts.get(name) ?? 0,
    lastSpan: (name) => lastSpans.get(name),
    instrumentation: () => instrumentation,
  };
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

/**
 * Cycle costs of `pool` and `twin` measured in alternating blocks, each the median of its
 * blocks. A process's cycle cost moves by up to ±35 % between phases of a run, with V8's heap
 * state (one phase ran 6 µs blocks, the next 10 µs, for the plain pool as for ours): two pools
 * measured at the same moments compare what each one's state costs, not when it was measured.
 */
async function interleavedCycleCost(pool, twin, pairs = 15, perBlock = 5_000) {
  const poolCosts = [];
  const twinCosts = [];
  for (let pair = 0; pair < pairs; pair++) {
    poolCosts.push(await cycleCost(pool, perBlock));
    twinCosts.push(await cycleCost(twin, perBlock));
  }
  return { poolNs: median(poolCosts), twinNs: median(twinCosts) };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
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

/**
 * 100 000 open leases: retained bytes; and cycle cost before and after they are released. Each
 * held checkout is taken inside a request span that ends once the connection is granted: the
 * shape of a connection leaked by a request that has finished. Every 1000th request span is
 * watched through a WeakRef: an open lease must not keep its finished request alive.
 */
async function openLeases(tracing, fifo = false) {
  tracing.instrument();
  const { context, trace } = require('@opentelemetry/api');
  const open = 100_000;
  // Resources created by the pool itself first (min), so the measured growth is the leases only.
  // LIFO: the measured cycles reuse one resource, as a pool under light load does.
  // FIFO (fifo: true): every cycle takes the resource idle longest, as a busy pool does.
  const pool = inMemoryPool({ max: open, min: open, fifo });
  // The twin never holds the 100 000 leases: its cycles, interleaved with the pool's, are the
  // same process at the same moment (see `interleavedCycleCost`).
  const twin = inMemoryPool({ max: open, min: open, fifo });
  while (pool.available < open || twin.available < open) await delay(10);
  const checkout = mode === 'sdkSpan' ? openSpanPerCheckout(tracing.tracer, pool) : { acquire: () => pool.acquire(), release: (resource) => pool.release(resource) };
  await cycleCost(pool, 50_000);
  await cycleCost(twin, 50_000);
  const before = await interleavedCycleCost(pool, twin);
  const heapBefore = heapAfterGc();
  const held = [];
  const requests = [];
  for (let index = 0; index < open; index++) {
    const request = tracing.tracer.startSpan('request');
    held.push(await context.with(trace.setSpan(context.active(), request), checkout.acquire));
    request.end();
    if (index % REQUEST_SAMPLE_EVERY === 0) requests.push(new WeakRef(request));
  }
  // A new task: V8 keeps a WeakRef's target alive until the job that made it is over.
  await delay(1);
  const heapHeld = heapAfterGc();
  const requestsAlive = requests.filter((request) => request.deref() !== undefined).length;
  const leasesHeld = tracing.instrumentation()?.['core']?.openLeaseCount ?? checkout.openSpans?.() ?? 0;
  for (const resource of held) await checkout.release(resource);
  held.length = 0;
  heapAfterGc();
  await cycleCost(pool, 50_000);
  const after = await interleavedCycleCost(pool, twin);
  for (const drained of [pool, twin]) {
    await drained.drain();
    await drained.clear();
  }
  // What the instrumented checkout span carries while open: the reference span is given the same.
  const lastCheckout = tracing.lastSpan('generic-pool checkout');
  const checkoutAttributes =
    mode === 'instrumented' && lastCheckout !== undefined
      ? Object.fromEntries(Object.entries(lastCheckout.attributes).filter(([key]) => !RELEASE_ATTRIBUTES.has(key)))
      : undefined;
  return {
    bytesPerLease: (heapHeld - heapBefore) / open,
    leasesHeld,
    requestsSampled: requests.length,
    requestsAlive,
    requestsEnded: tracing.spans('request'),
    checkoutAttributes,
    heapAfter: heapAfterGc() - heapBefore,
    cycleBeforeNs: before.poolNs,
    twinBeforeNs: before.twinNs,
    cycleAfterNs: after.poolNs,
    twinAfterNs: after.twinNs,
  };
}

/**
 * The reference for an open lease's own SDK span: the plain pool and a tiny wrapper that starts
 * one SDK span per checkout (child of the active request, with the attributes pool-leak's
 * checkout span has while open), holds it open while the connection is out and ends it at
 * release. Beyond this, an instrumented open lease costs only the instrumentation's bookkeeping.
 */
function openSpanPerCheckout(tracer, pool) {
  const attributes = JSON.parse(process.env.POOL_LEAK_SOAK_SPAN_ATTRIBUTES ?? 'null');
  if (attributes === null) {
    throw new Error("POOL_LEAK_SOAK_SPAN_ATTRIBUTES is not set: run soak.mjs, which passes the instrumented run's checkout span attributes");
  }
  const { SpanKind } = require('@opentelemetry/api');
  const spans = new Map();
  return {
    async acquire() {
      const span = tracer.startSpan('generic-pool checkout', { kind: SpanKind.INTERNAL, attributes });
      const resource = await pool.acquire();
      spans.set(resource, span);
      return resource;
    },
    release(resource) {
      spans.get(resource)?.end();
      spans.delete(resource);
      return pool.release(resource);
    },
    openSpans: () => spans.size,
  };
}

/**
 * 100 000 leases crossing a 3 s threshold: max event-loop delay until all are reported. The
 * threshold is set once the set-up (100 000 checkouts, a collection) is over, and is longer when
 * the set-up took longer than 2 s (a slow or busy machine), so that the first lease crosses it
 * 1 s into the measured window and the rest spread as they were granted: with a fixed threshold
 * a slow set-up let sweeps report leases before the window opened.
 */
async function expiry(tracing) {
  const watching = mode === 'instrumented';
  tracing.instrument({ leakThresholdMs: watching ? SET_UP_THRESHOLD_MS : 0 });
  const open = 100_000;
  const pool = inMemoryPool({ max: open });
  const warm = [];
  for (let index = 0; index < open; index++) warm.push(pool.acquire());
  const resources = await Promise.all(warm);
  for (const resource of resources) await pool.release(resource);
  const firstGrantBefore = performance.now();
  const held = await Promise.all(Array.from({ length: open }, () => pool.acquire()));
  // The set-up's garbage is collected first: the window measures the sweeps, not the set-up.
  heapAfterGc();
  const thresholdMs = Math.max(EXPIRY_THRESHOLD_MS, Math.ceil(performance.now() - firstGrantBefore) + 1000);
  if (watching) tracing.instrumentation().setConfig({ leakThresholdMs: thresholdMs });
  const leakSpan = 'generic-pool leak';
  const reportedBeforeWindow = tracing.spans(leakSpan);
  const monitor = monitorEventLoopDelay({ resolution: 1 });
  monitor.enable();
  const started = performance.now();
  while (watching ? tracing.spans(leakSpan) < open && performance.now() - started < 30_000 : performance.now() - started < 5_000) {
    await delay(5);
  }
  monitor.disable();
  const reported = tracing.spans(leakSpan);
  for (const resource of held) await pool.release(resource);
  await pool.drain();
  await pool.clear();
  return { maxDelayMs: monitor.max / 1e6, reported, reportedBeforeWindow, elapsedMs: performance.now() - started, thresholdMs };
}

/** The contrib instrumentation of generic-pool, for mode contrib. */
function genericPoolContrib() {
  const { GenericPoolInstrumentation } = require('@opentelemetry/instrumentation-generic-pool');
  return new GenericPoolInstrumentation();
}

/**
 * 20 000 waiters timing out (acquireTimeoutMillis) on a generic-pool whose 2 resources are held,
 * `STORM_ROUNDS` times.
 */
async function storm(tracing) {
  tracing.instrument({}, genericPoolContrib);
  const pool = inMemoryPool({ max: 2, acquireTimeoutMillis: STORM_TIMEOUT_MS });
  const held = [await pool.acquire(), await pool.acquire()];
  const results = await storms(tracing, STORM_WAITERS, () => pool.acquire());
  for (const resource of held) await pool.release(resource);
  await pool.drain();
  await pool.clear();
  return results;
}

/**
 * 20 000 checkouts waiting on a generic-pool whose 2 resources are held, with generic-pool's
 * default (no acquire timeout): the heap after GC per waiting checkout, then every waiter is
 * served in turn. What a storm holds while it waits, before any of it fails.
 */
async function waiters(tracing) {
  tracing.instrument({}, genericPoolContrib);
  const pool = inMemoryPool({ max: 2 });
  const held = [await pool.acquire(), await pool.acquire()];
  const before = heapAfterGc();
  const waiting = [];
  for (let index = 0; index < STORM_WAITERS; index++) {
    waiting.push(pool.acquire());
    if (index % 500 === 499) await tick();
  }
  await tick();
  const bytesPerWaiter = (heapAfterGc() - before) / STORM_WAITERS;
  for (const resource of held) await pool.release(resource);
  let served = 0;
  for (const granted of waiting) {
    await pool.release(await granted);
    served++;
  }
  await pool.drain();
  await pool.clear();
  return { waiters: STORM_WAITERS, bytesPerWaiter, served };
}

/**
 * 5 000 waiters timing out (connectionTimeoutMillis) on a pg.Pool against the embedded
 * PostgreSQL whose 2 clients are held, `STORM_ROUNDS` times.
 */
async function pgStorm(tracing) {
  tracing.instrument({}, () => {
    const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg');
    return new PgInstrumentation();
  });
  const { Pool } = require('pg');
  const pool = new Pool({ ...soakConnection(), max: 2, connectionTimeoutMillis: STORM_TIMEOUT_MS });
  const held = [await pool.connect(), await pool.connect()];
  const results = await storms(tracing, PG_STORM_WAITERS, () => pool.connect());
  for (const client of held) client.release();
  await pool.end();
  return results;
}

/**
 * `STORM_ROUNDS` storms of `waiters` calls to `take` on a pool whose connections are all held, so
 * every one fails at its timeout. A storm ends when every waiter has failed and every span the
 * mode makes per waiter has ended (pool-leak's failure queue finishes some on later turns): the
 * wall time the process spends on it, the time until the last waiter's promise settled (what
 * the application waits for), and the CPU time the process and its main thread used meanwhile.
 */
async function storms(tracing, waiters, take) {
  const spanName = STORM_SPANS[scenarioName][mode];
  if (traced && spanName === undefined) throw new Error(`no storm span known for ${scenarioName} in mode ${mode}`);
  const monitor = monitorEventLoopDelay({ resolution: 1 });
  const rounds = [];
  for (let round = 0; round < STORM_ROUNDS; round++) {
    const spansBefore = tracing.spans(spanName);
    monitor.enable();
    const cpuBefore = process.cpuUsage();
    const threadCpuBefore = threadCpuUsage();
    const started = performance.now();
    const settled = [];
    // They arrive as requests do, a few hundred per turn of the loop, not in one synchronous burst.
    for (let index = 0; index < waiters; index++) {
      settled.push(take().then(() => 'granted', () => 'failed'));
      if (index % 500 === 499) await tick();
    }
    const outcomes = await Promise.all(settled);
    const settledMs = performance.now() - started;
    while (traced && tracing.spans(spanName) - spansBefore < waiters && performance.now() - started < 60_000) await tick();
    const elapsedMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const threadCpu = threadCpuUsage(threadCpuBefore);
    monitor.disable();
    rounds.push({
      elapsedMs,
      settledMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      threadCpuMs: (threadCpu.user + threadCpu.system) / 1000,
      failed: outcomes.filter((outcome) => outcome === 'failed').length,
      spans: traced ? tracing.spans(spanName) - spansBefore : 0,
    });
  }
  const warmMedian = (key) => {
    const warm = rounds.slice(1).map((round) => round[key]).sort((a, b) => a - b);
    return warm[Math.floor(warm.length / 2)];
  };
  return {
    waiters,
    coldMs: rounds[0].elapsedMs,
    warmMs: warmMedian('elapsedMs'),
    warmSettledMs: warmMedian('settledMs'),
    warmCpuMs: warmMedian('cpuMs'),
    warmThreadCpuMs: warmMedian('threadCpuMs'),
    roundsMs: rounds.map((round) => Math.round(round.elapsedMs)),
    maxDelayMs: monitor.max / 1e6,
    failed: rounds.reduce((sum, round) => sum + round.failed, 0),
    spans: rounds.reduce((sum, round) => sum + round.spans, 0),
  };
}

/**
 * CPU time of this thread alone (Node >= 23.9): the work the storm put on the event loop, without
 * the garbage collector's and the runtime's helper threads that `process.cpuUsage` adds in.
 */
function threadCpuUsage(previous) {
  return typeof process.threadCpuUsage === 'function' ? process.threadCpuUsage(previous) : process.cpuUsage(previous);
}

function soakConnection() {
  const connection = JSON.parse(process.env.POOL_LEAK_SOAK_CONNECTION ?? 'null');
  if (connection === null) throw new Error('POOL_LEAK_SOAK_CONNECTION is not set: run soak.mjs, which starts PostgreSQL and passes its address');
  return connection;
}

/**
 * Rounds of: pg pool created, one client held, 20 checkouts queued, pool ended, dropped. The
 * same warm-up for plain and instrumented; the first heap sample is taken right after it.
 */
async function churn(tracing) {
  tracing.instrument();
  const connection = soakConnection();
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
