#!/usr/bin/env node
// Stalled waiters at scale: a generic-pool of 2 connections, both leaked, at its default
// infinite wait, and a queue of 20 000 checkouts (each in its request's span, 500 per turn of
// the loop) that all pass the wait threshold. With stall detection on (waitThresholdMs 2000,
// long enough for the whole queue to form first) the run ends when the 20 000th
// `wait.stalled` span is exported; off (waitThresholdMs 0), the same queue is watched for as
// long as the "on" run of the round took. Each in its own process, rounds interleaved.
// Reported: the run's time, the event loop's largest delay over the run, and with stalls on how
// long the 20 000 reports took from the first to the last (holders gathered once per pool per
// sweep turn, a budget of 5 ms per turn). Run with
// `node packages/instrumentation-pool-leak/bench/stall.bench.mjs` after `npm run build:packages`;
// progress on stderr, the table on stdout.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const WAITERS = 20_000;
const WAIT_THRESHOLD_MS = 2000;
const ROUNDS = Number(process.env.POOL_LEAK_BENCH_ROUNDS ?? 3);
const WORKER_TIMEOUT_MS = 120_000;

const [role, mode, watchMs] = process.argv.slice(2);
if (role === 'worker') worker(mode === 'on', Number(watchMs)).then((results) => process.send({ results }, () => process.exit(0)), fail);
else parent().catch(fail);

function fail(error) {
  process.stderr.write(`[stall bench] FAILED: ${error?.stack ?? error}\n`);
  process.exit(1);
}

async function parent() {
  process.stderr.write(`[stall bench] Node ${process.version}, ${ROUNDS} rounds of ${WAITERS} waiters, stalls on and off\n`);
  const runs = { on: [], off: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // "off" watches its queue as long as this round's "on" run took.
    const on = await runWorker('on', 0);
    const off = await runWorker('off', on.elapsedMs);
    for (const [name, result] of [['on', on], ['off', off]]) {
      process.stderr.write(`[stall bench] round ${round + 1}, stalls ${name}: ${Math.round(result.elapsedMs)} ms, max loop delay ${result.maxDelayMs.toFixed(1)} ms\n`);
      runs[name].push(result);
    }
  }
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const row = (mode) => {
    const results = runs[mode];
    const stalled = results[0].stallSpans;
    return [
      `stalls ${mode}${mode === 'on' ? ` (waitThresholdMs ${WAIT_THRESHOLD_MS})` : ' (waitThresholdMs 0)'}`,
      `${Math.round(median(results.map((result) => result.elapsedMs)))} ms (${results.map((result) => Math.round(result.elapsedMs)).join('/')})`,
      `${median(results.map((result) => result.maxDelayMs)).toFixed(1)} ms (${results.map((result) => result.maxDelayMs.toFixed(1)).join('/')})`,
      mode === 'on' ? `${Math.round(median(results.map((result) => result.reportMs)))} ms` : '—',
      mode === 'on' ? `${Math.round(median(results.map((result) => result.sweepMs)))} ms (${(median(results.map((result) => result.sweepMs)) * 1000 / WAITERS).toFixed(1)} µs per waiter)` : '—',
      `${stalled}`,
    ];
  };
  const header = ['queue of 20 000 waiters, 2 leaked connections', 'run time (median; rounds)', 'max loop delay (median; rounds)', 'first → last stall report (median)', 'time inside the sweep (median)', 'stall spans'];
  const rows = [row('on'), row('off')];
  const widths = header.map((_, column) => Math.max(header[column].length, ...rows.map((cells) => cells[column].length)));
  const line = (cells) => `| ${cells.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  process.stdout.write(`${[line(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...rows.map(line)].join('\n')}\n`);
}

function runWorker(mode, watchMs) {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['worker', mode, String(watchMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let results;
    const timer = setTimeout(() => child.kill('SIGKILL'), WORKER_TIMEOUT_MS);
    child.on('message', (message) => (results = message.results));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (results === undefined) reject(new Error(`stalls ${mode}: the worker ended without results (code ${code}, signal ${signal})`));
      else resolve(results);
    });
  });
}

async function worker(stallsOn, watchMs) {
  const { context, trace } = require('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
  const { SimpleSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');
  const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
  const counts = new Map();
  let firstStallAt;
  let lastStallAt;
  const exporter = {
    export(spans, done) {
      for (const span of spans) {
        counts.set(span.name, (counts.get(span.name) ?? 0) + 1);
        if (span.name === 'generic-pool wait.stalled') {
          firstStallAt ??= performance.now();
          lastStallAt = performance.now();
        }
      }
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  const instrumentation = new PoolLeakInstrumentation({ leakThresholdMs: 0, waitThresholdMs: stallsOn ? WAIT_THRESHOLD_MS : 0 });
  instrumentation.setTracerProvider(provider);
  const genericPool = require('generic-pool');
  let nextId = 0;
  const pool = genericPool.createPool({ create: async () => ({ id: nextId++ }), destroy: async () => {} }, { max: 2 });
  const tracer = provider.getTracer('stall-bench');
  // The leak: two connections taken and never given back.
  await pool.acquire();
  await pool.acquire();
  // Time spent inside the stall sweep, read through the core's sweeper (not public API).
  let sweepMs = 0;
  const sweeper = instrumentation.core?.stalls.sweeper;
  if (sweeper !== undefined) {
    const sweep = sweeper.sweep.bind(sweeper);
    sweeper.sweep = (...args) => {
      const before = performance.now();
      try {
        return sweep(...args);
      } finally {
        sweepMs += performance.now() - before;
      }
    };
  }
  const monitor = monitorEventLoopDelay({ resolution: 1 });
  monitor.enable();
  const started = performance.now();
  const settled = [];
  // They arrive as requests do, a few hundred per turn of the loop, each in its request's span.
  for (let index = 0; index < WAITERS; index++) {
    settled.push(
      tracer.startActiveSpan('GET /report', (span) =>
        pool.acquire().then(
          () => 'granted',
          () => 'failed',
        ).finally(() => span.end()),
      ),
    );
    if (index % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
  }
  const queuedMs = performance.now() - started;
  if (stallsOn && queuedMs >= WAIT_THRESHOLD_MS) process.stderr.write(`[stall bench] the queue took ${Math.round(queuedMs)} ms to form, longer than the threshold: reports overlap arrivals\n`);
  const stalls = () => counts.get('generic-pool wait.stalled') ?? 0;
  const done = stallsOn ? () => stalls() >= WAITERS : () => performance.now() - started >= watchMs;
  while (!done() && performance.now() - started < 90_000) await new Promise((resolve) => setTimeout(resolve, 5));
  const elapsedMs = performance.now() - started;
  monitor.disable();
  // The waiters wait forever (the pool's default): the process ends here, with them.
  void settled;
  return {
    elapsedMs,
    maxDelayMs: monitor.max / 1e6,
    reportMs: firstStallAt === undefined ? 0 : lastStallAt - firstStallAt,
    stallSpans: stalls(),
    sweepMs,
  };
}
