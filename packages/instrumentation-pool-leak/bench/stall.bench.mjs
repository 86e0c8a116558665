#!/usr/bin/env node
// Stalled waiters at scale: a generic-pool of 2 connections, both leaked, and a queue of 20 000
// checkouts that all pass the wait threshold (300 ms) before the pool's own timeout (1.5 s)
// fails them. The same storm runs with stall detection on (waitThresholdMs 300: 20 000
// `wait.stalled` spans, events and counter points, holders gathered once per pool per sweep
// turn) and off (waitThresholdMs 0), each in its own process, rounds interleaved. Reported: the
// time until every waiter failed and every checkout span ended, the event loop's largest delay
// over the storm, and, with stalls on, how long the stall reports took from the first to the
// last. Run with `node packages/instrumentation-pool-leak/bench/stall.bench.mjs` after
// `npm run build:packages`; progress on stderr, the table on stdout.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const WAITERS = 20_000;
const WAIT_THRESHOLD_MS = 300;
const ACQUIRE_TIMEOUT_MS = 1500;
const ROUNDS = Number(process.env.POOL_LEAK_BENCH_ROUNDS ?? 3);
const WORKER_TIMEOUT_MS = 120_000;

const [role, mode] = process.argv.slice(2);
if (role === 'worker') worker(mode === 'on').then((results) => process.send({ results }, () => process.exit(0)), fail);
else parent().catch(fail);

function fail(error) {
  process.stderr.write(`[stall bench] FAILED: ${error?.stack ?? error}\n`);
  process.exit(1);
}

async function parent() {
  process.stderr.write(`[stall bench] Node ${process.version}, ${ROUNDS} rounds of ${WAITERS} waiters, stalls on and off\n`);
  const runs = { on: [], off: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
      const result = await runWorker(mode);
      process.stderr.write(`[stall bench] round ${round + 1}, stalls ${mode}: ${Math.round(result.elapsedMs)} ms, max loop delay ${result.maxDelayMs.toFixed(1)} ms\n`);
      runs[mode].push(result);
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
      `${stalled} / ${results[0].failed}`,
    ];
  };
  const header = ['storm of 20 000 waiters, 2 leaked connections', 'time to last span (median; rounds)', 'max loop delay (median; rounds)', 'first → last stall report', 'stall spans / failed'];
  const rows = [row('on'), row('off')];
  const widths = header.map((_, column) => Math.max(header[column].length, ...rows.map((cells) => cells[column].length)));
  const line = (cells) => `| ${cells.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  process.stdout.write(`${[line(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...rows.map(line)].join('\n')}\n`);
}

function runWorker(mode) {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['worker', mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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

async function worker(stallsOn) {
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
  const pool = genericPool.createPool({ create: async () => ({ id: nextId++ }), destroy: async () => {} }, { max: 2, acquireTimeoutMillis: ACQUIRE_TIMEOUT_MS });
  const tracer = provider.getTracer('stall-bench');
  // The leak: two connections taken and never given back.
  await pool.acquire();
  await pool.acquire();
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
  const outcomes = await Promise.all(settled);
  const checkouts = () => counts.get('generic-pool checkout') ?? 0;
  while (checkouts() < WAITERS && performance.now() - started < 60_000) await new Promise((resolve) => setImmediate(resolve));
  const elapsedMs = performance.now() - started;
  monitor.disable();
  return {
    elapsedMs,
    maxDelayMs: monitor.max / 1e6,
    reportMs: firstStallAt === undefined ? 0 : lastStallAt - firstStallAt,
    stallSpans: counts.get('generic-pool wait.stalled') ?? 0,
    failed: outcomes.filter((outcome) => outcome === 'failed').length,
  };
}
