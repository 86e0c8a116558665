// The lease core without a pool library: what checkin classification and the leak sweeper cost,
// and that a checkout+checkin cycle does not grow with the number of open leases.
// Run by `npm run bench` after the pg-pool bench; reads the built package (build/src).
import { context, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { atDepth, DEEP_CALLER_FRAMES, floorCapture, LIBRARY_PATH_FRAMES, libraryPath } from './suites.mjs';

const require = createRequire(import.meta.url);
const { classifyCheckin } = require('../build/src/core/checkin-context.js');
const { LeakSweeper } = require('../build/src/core/leak-detector.js');
const { LeaseCore } = require('../build/src/core/lease-core.js');
const { LeaseQueue } = require('../build/src/core/lease-queue.js');
const { createStackCapture } = require('../build/src/call-site/stack.js');
const { readPrepared } = require('../build/src/call-site/v8-frames.js');
const { FrameFields } = require('../build/src/call-site/structured-frames.js');
const semconv = require('../build/src/signals/semconv.js');

const TIME_MS = Number(process.env.POOL_LEAK_BENCH_CORE_MS ?? 400);
const OPEN_LEASE_COUNTS = [10, 1_000, 100_000];
const progress = (line) => process.stderr.write(`[core bench] ${line}\n`);

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const provider = new TracerProvider({
  spanProcessors: [new SimpleSpanProcessor({ exporter: { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} } })],
});
const tracer = provider.getTracer('core-bench');
const OWNER = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };
const OTHER = { ...OWNER, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' };
const inTrace = (spanContext) => trace.setSpanContext(context.active(), spanContext);

async function run(title, bench) {
  progress(`${title} ...`);
  await bench.run();
  return bench.tasks.map((task) => ({ title, name: task.name, ns: task.result.latency.mean * 1e6 }));
}

async function classification() {
  const bench = new Bench({ time: TIME_MS, warmupTime: 100 });
  const owner = inTrace(OWNER);
  const other = inTrace(OTHER);
  bench.add('classifyCheckin: inside the owner trace (the common case)', () => context.with(owner, () => classifyCheckin(OWNER.traceId)));
  bench.add('classifyCheckin: lease without a trace', () => context.with(owner, () => classifyCheckin(undefined)));
  bench.add('classifyCheckin: another trace (event follows)', () => context.with(other, () => classifyCheckin(OWNER.traceId)));
  bench.add('context.with alone (subtract from the above)', () => context.with(owner, () => undefined));
  return run('checkin classification', bench);
}

/** A sweeper over one held queue of `open` leases, the first `expired` of them past the threshold. */
function sweeperWith(open, expired) {
  const held = new LeaseQueue();
  for (let i = 0; i < open; i++) held.append({ grantedAt: i < expired ? 0 : 1_000_000, leakSuspected: false });
  const sweeper = new LeakSweeper(30_000, () => [held], () => {});
  sweeper.stop();
  return sweeper;
}

async function sweeper() {
  const bench = new Bench({ time: TIME_MS, warmupTime: 100 });
  for (const open of OPEN_LEASE_COUNTS) {
    const idle = sweeperWith(open, 0);
    bench.add(`sweep, ${open.toLocaleString('en')} open leases, none expired`, () => idle.sweep(1_000_500));
  }
  const rows = await run('leak sweeper', bench);
  rows.push(expiredSweep(10_000, 100));
  return rows;
}

/**
 * A sweep that reports leases empties them from the set, so it cannot repeat on the same set:
 * build the sets first, then time only the sweeps.
 */
function expiredSweep(open, expired, samples = 50) {
  const sweepers = Array.from({ length: samples }, () => sweeperWith(open, expired));
  const started = process.hrtime.bigint();
  for (const sweeper of sweepers) sweeper.sweep(1_000_500);
  const ns = Number(process.hrtime.bigint() - started) / samples;
  return { title: 'leak sweeper', name: `sweep, ${open.toLocaleString('en')} open leases, ${expired} expired (reports them)`, ns };
}

const probe = { describe: () => ({ library: 'generic-pool', name: 'bench' }) };

async function cycleAt(openLeases) {
  const core = new LeaseCore({
    tracer: () => tracer,
    tracerProvider: () => provider,
    meter: new MeterProvider().getMeter('core-bench'),
    settings: { stackCapture: createStackCapture({ maxFrames: 50, ownDirs: ['/nowhere'] }), leakThresholdMs: 30_000 },
  });
  const pool = {};
  function checkout() {
    return core.checkout(pool, probe, checkout);
  }
  const held = [];
  for (let i = 0; i < openLeases; i++) {
    const lease = checkout();
    lease.granted({});
    held.push(lease);
  }
  const connection = {};
  const bench = new Bench({ time: TIME_MS, warmupTime: 100 });
  const request = inTrace(OWNER);
  bench.add(`checkout+grant+checkin with ${openLeases.toLocaleString('en')} open leases`, () =>
    context.with(request, () => {
      const lease = checkout();
      lease.granted(connection);
      lease.checkin(false, checkout);
    }),
  );
  const rows = await run(`lease cycle, ${openLeases} open`, bench);
  core.stop();
  return rows;
}

function print(rows) {
  const width = Math.max(...rows.map((row) => row.name.length));
  console.log(`\nlease core, ${process.version}, tinybench mean per operation\n`);
  for (const row of rows) console.log(`${row.name.padEnd(width)}  ${(row.ns / 1000).toFixed(3).padStart(9)} µs`);
  const contextWith = rows.find((row) => row.name.startsWith('context.with alone'));
  const common = rows.find((row) => row.name.startsWith('classifyCheckin: inside'));
  if (contextWith !== undefined && common !== undefined) {
    console.log(`
checkin classification, net of context.with: ${((common.ns - contextWith.ns) / 1000).toFixed(3)} µs per checkin`);
  }
  const emptyCall = rows.find((row) => row.name.startsWith('empty call'));
  const statement = rows.find((row) => row.name.startsWith('statement on a leased connection'));
  if (emptyCall !== undefined && statement !== undefined) {
    console.log(`foreign-context check, net of the call: ${((statement.ns - emptyCall.ns) / 1000).toFixed(3)} µs per statement`);
  }
  const withState = rows.find((row) => row.name.startsWith('statement issued + settled'));
  const checkAlone = rows.find((row) => row.name.startsWith('foreign-context check alone'));
  if (withState !== undefined && checkAlone !== undefined && emptyCall !== undefined) {
    console.log(
      `statement state bookkeeping (issued + settled), net of the call: ${((withState.ns - emptyCall.ns) / 1000).toFixed(3)} µs per statement; ` +
        `the check alone as before: ${((checkAlone.ns - emptyCall.ns) / 1000).toFixed(3)} µs; added: ${((withState.ns - checkAlone.ns) / 1000).toFixed(3)} µs`,
    );
  }
  console.log('\ntargets: checkin classification ≤ 0.2 µs; foreign-context check ≤ 0.1 µs per statement; sweep cost independent of open leases; cycle cost flat across 10 / 1 000 / 100 000 open leases');
}

/** A statement as pg takes it: the query config object with its parameters. */
const STATEMENT = { text: 'SELECT id, note FROM entries WHERE id = $1', values: [1] };

/**
 * The foreign-context check runs before every statement on a pooled connection: a WeakMap lookup
 * of the connection's lease, one context lookup and a trace-id comparison.
 */
async function statementCheck() {
  const core = new LeaseCore({
    tracer: () => tracer,
    tracerProvider: () => provider,
    meter: new MeterProvider().getMeter('core-bench'),
    settings: { leakThresholdMs: 0 },
  });
  const pool = {};
  const leased = {};
  const notLeased = {};
  const request = inTrace(OWNER);
  const lease = context.with(request, () => core.checkout(pool, probe, statementCheck));
  lease.granted(leased);
  const bench = new Bench({ time: TIME_MS, warmupTime: 100 });
  const boundary = () => {};
  bench.add('statement on a leased connection, in the owner trace (the common case)', () => core.statementIssued(leased, boundary));
  bench.add('statement on a connection no lease holds', () => core.statementIssued(notLeased, boundary));
  bench.add('empty call (subtract from the above)', () => boundary(leased, boundary));
  // #13: the lease also counts the statement, marks it in flight and keeps a reference to it;
  // the adapter settles it when the library answers. Compared in the same run with the check
  // alone as it was before (one WeakMap lookup, one context lookup, one id comparison).
  bench.add('statement issued + settled on a leased connection (state bookkeeping + foreign-context check)', () =>
    core.statementIssued(leased, boundary, STATEMENT)?.statementSettled(),
  );
  const leaseByConnection = new WeakMap([[leased, { ownerTraceId: OWNER.traceId }]]);
  bench.add('foreign-context check alone, as before the state bookkeeping', () => {
    const owner = leaseByConnection.get(leased)?.ownerTraceId;
    const active = trace.getSpanContext(context.active());
    return active !== undefined && active.traceId !== owner;
  });
  const rows = await context.with(request, () => run('foreign-context check per statement', bench));
  lease.checkin(false, statementCheck);
  core.stop();
  return rows;
}

/**
 * The checkout stack capture alone (the instrumentation's default settings: 50 frames, windows),
 * per caller shape, net of the same call into a pool that captures nothing, as a multiple of the
 * floor. Each cell is the lowest of several rounds' means: the capture is a few µs, and other
 * load on the machine only adds to it.
 */
async function stackCapture() {
  const ownDirs = [fileURLToPath(new URL('../build/src/', import.meta.url))];
  const capturing = capturingPool(createStackCapture({ maxFrames: 50, ownDirs }));
  const plain = { acquire: () => undefined };
  const library = libraryPath();
  const direct = (pool) => pool.acquire();
  const shapes = [
    ['direct caller', (pool) => direct(pool)],
    [`${DEEP_CALLER_FRAMES}-deep caller`, (pool) => atDepth(DEEP_CALLER_FRAMES, () => pool.acquire())],
    [`${LIBRARY_PATH_FRAMES}-frame library path`, (pool) => library.acquireThrough(pool)],
  ];
  // V8's part alone, for the direct caller and the library path: as many frames as the windows
  // rule takes there, read by prepare functions that only ask V8 for what any exact capture must
  // (each frame's script, to find the application) or for every field the cache key reads (through
  // the key's own FrameFields.add, so the two cannot drift). Net of the same shape's plain call.
  const v8Shapes = [];
  for (const [shapeName, call] of [shapes[0], shapes[2]]) {
    const frames = windowTakenBy(call, ownDirs);
    for (const [reads, prepare] of [['scripts', readScripts], ['key fields', readKeyFields]]) {
      const pool = { acquire: () => readPrepared(pool.acquire, frames, prepare) };
      v8Shapes.push({ shapeName, name: `V8 alone, ${frames} frames: ${reads}`, task: `${shapeName}: V8 alone, ${reads}`, run: () => call(pool) });
    }
  }
  const best = new Map();
  for (let round = 0; round < 5; round++) {
    const bench = new Bench({ time: TIME_MS / 2, warmupTime: 50 });
    bench.add('floor', floorCapture);
    for (const { task, run } of v8Shapes) bench.add(task, run);
    // The harness's own cost per iteration, taken off the floor as the plain calls are taken off the captures.
    bench.add('empty', () => undefined);
    for (const [name, call] of shapes) {
      bench.add(`${name} / capture`, () => call(capturing));
      bench.add(`${name} / plain`, () => call(plain));
    }
    progress(`stack capture round ${round + 1}/5 ...`);
    await bench.run();
    for (const task of bench.tasks) best.set(task.name, Math.min(best.get(task.name) ?? Infinity, task.result.latency.mean * 1000));
  }
  const floor = best.get('floor') - best.get('empty');
  const lines = [`\nstack capture alone (50 frames, windows), net of the call, lowest of 5 rounds; floor (net of an empty task) = ${floor.toFixed(2)} µs`];
  for (const [name] of shapes) {
    const net = best.get(`${name} / capture`) - best.get(`${name} / plain`);
    lines.push(`  ${name.padEnd(26)} ${net.toFixed(2).padStart(6)} µs = ${(net / floor).toFixed(2)}× floor`);
  }
  lines.push("  V8's part alone on the same frames: each frame's script read (the least any exact capture pays), then every field the cache key reads:");
  for (const { shapeName, name, task } of v8Shapes) {
    const net = best.get(task) - best.get(`${shapeName} / plain`);
    lines.push(`    ${`${shapeName}, ${name}`.padEnd(58)} ${net.toFixed(2).padStart(6)} µs = ${(net / floor).toFixed(2)}× floor`);
  }
  return lines;
}

/** A pool whose `acquire` captures the stack above itself with `capture`. */
function capturingPool(capture) {
  const pool = {
    acquire() {
      return capture.capture(pool.acquire);
    },
  };
  return pool;
}

/** Frames the windows rule takes for `call`'s shape of caller, learned by a capture of its own. */
function windowTakenBy(call, ownDirs) {
  const learner = createStackCapture({ maxFrames: 50, ownDirs });
  const pool = capturingPool(learner);
  call(pool);
  return learner.unreadFramesAt(pool.acquire);
}

/** Reads each frame's script, which telling application frames from the rest needs. */
function readScripts(_error, sites) {
  for (const site of sites) site.getScriptNameOrSourceURL();
  return '';
}

const keyFields = new FrameFields();

/** Reads each frame's script and what the structured cache key reads of it (structured-frames.ts). */
function readKeyFields(_error, sites) {
  keyFields.reset();
  for (const site of sites) {
    site.getScriptNameOrSourceURL();
    keyFields.add(site, 0);
  }
  return '';
}

/**
 * What the checkout span's content costs the SDK, apart from any bookkeeping: contrib
 * instrumentation-generic-pool's span (a name, no attributes, ended at the grant) against a span
 * with the content DESIGN.md gives every checkout span (the pool's two attributes at the start,
 * `pool.wait_ms` and the `pool.acquired` event at the grant, `pool.held_ms` at the checkin). This
 * is the part of "stacks off ÷ contrib" in the cost table that is the span itself, not its
 * making. Lowest mean of 5 rounds, both in each round.
 */
async function spanContent() {
  const parent = inTrace(OWNER);
  const poolAttributes = Object.freeze({ [semconv.ATTR_POOL_LIBRARY]: 'generic-pool', [semconv.ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: 'generic-pool' });
  const shapes = {
    "contrib's span: name only": () => tracer.startSpan('generic-pool.acquire', {}, parent).end(),
    'checkout span with its content': () => {
      const requestedAt = performance.now();
      const span = tracer.startSpan('generic-pool checkout', { attributes: poolAttributes, startTime: requestedAt }, parent);
      const grantedAt = performance.now();
      span.setAttribute(semconv.ATTR_POOL_WAIT_MS, grantedAt - requestedAt);
      span.addEvent(semconv.EVENT_POOL_ACQUIRED, grantedAt);
      const now = performance.now();
      span.setAttribute(semconv.ATTR_POOL_HELD_MS, now - grantedAt);
      span.end(now);
    },
  };
  const best = new Map();
  for (let round = 0; round < 5; round++) {
    const bench = new Bench({ time: TIME_MS / 2, warmupTime: 50 });
    for (const [name, shape] of Object.entries(shapes)) bench.add(name, shape);
    progress(`span content round ${round + 1}/5 ...`);
    await bench.run();
    // The SDK's export of each span settles in a microtask: let them run between rounds.
    await new Promise((resolve) => setImmediate(resolve));
    for (const task of bench.tasks) best.set(task.name, Math.min(best.get(task.name) ?? Infinity, task.result.latency.mean * 1000));
  }
  const [bare, content] = Object.keys(shapes).map((name) => best.get(name));
  return [
    `\ncheckout span content on the SDK, lowest of 5 rounds: contrib's span ${bare.toFixed(2)} µs, with the checkout span's content ${content.toFixed(2)} µs: ` +
      `+${(content - bare).toFixed(2)} µs per checkout that any instrumentation writing that content pays`,
  ];
}

const rows = [...(await classification()), ...(await statementCheck()), ...(await sweeper())];
for (const open of OPEN_LEASE_COUNTS) rows.push(...(await cycleAt(open)));
const stackLines = await stackCapture();
const contentLines = await spanContent();
print(rows);
console.log([...stackLines, ...contentLines].join('\n'));
