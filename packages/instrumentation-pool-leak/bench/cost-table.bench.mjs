#!/usr/bin/env node
// The production-cost table of issue #22, side by side in one run: per row (a checkout cycle
// shape) and column (what is loaded and how the request arrives) the mean µs per cycle, each
// column in its own process, rounds interleaved, the lowest round kept; then the floor multiples.
// Columns: bare (no SDK, no request span), floor (bare + one 1-frame capture with its position
// read, at the pool's boundary), sdk / contrib / ours / ours stacks off (request span sampled),
// and sdk:u / contrib:u / ours:u (the request arrives with traceparent flags 00).
// Usage: node cost-table.bench.mjs  (POOL_LEAK_BENCH_ROUNDS, POOL_LEAK_BENCH_CYCLES to change).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const COLUMNS = ['bare', 'floor', 'sdk', 'contrib', 'ours', 'ours stacks off', 'sdk:u', 'contrib:u', 'ours:u'];
const ROWS = ['generic-pool, app calls pool', 'generic-pool via 12 library frames'];
const ROUNDS = Math.min(9, Math.max(1, Number(process.env.POOL_LEAK_BENCH_ROUNDS) || 3));
const CYCLES = Number(process.env.POOL_LEAK_BENCH_CYCLES) || 100_000;

if (process.argv[2] === '--column') {
  const { runColumn } = await import('./cost-table-worker.mjs');
  const results = await runColumn(process.argv[3], ROWS, CYCLES);
  process.send(results, () => process.exit(0));
} else {
  const means = new Map();
  for (let round = 0; round < ROUNDS; round++) {
    const order = COLUMNS.map((_, index) => COLUMNS[(index + round) % COLUMNS.length]);
    for (const column of order) {
      process.stderr.write(`[cost-table] round ${round + 1}/${ROUNDS}: ${column}\n`);
      const results = await runWorker(column);
      for (const [row, us] of Object.entries(results)) {
        const key = `${row}\u0000${column}`;
        means.set(key, Math.min(means.get(key) ?? Infinity, us));
      }
    }
  }
  process.stdout.write(`${report(means)}\n`);
}

function runWorker(column) {
  return new Promise((resolve, reject) => {
    const child = fork(SELF, ['--column', column], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], timeout: 300_000 });
    let result;
    child.on('message', (message) => (result = message));
    child.on('exit', (code) => (result === undefined ? reject(new Error(`column "${column}" exited with code ${code} without results`)) : resolve(result)));
  });
}

function report(means) {
  const at = (row, column) => means.get(`${row}\u0000${column}`);
  const lines = [
    `checkout+release cycle, µs (Node ${process.version}; lowest of ${ROUNDS} interleaved rounds, ${CYCLES} cycles each; one process per column)`,
    '',
    `| cycle | ${COLUMNS.join(' | ')} |`,
    `|---|${COLUMNS.map(() => '---').join('|')}|`,
    ...ROWS.map((row) => `| ${row} | ${COLUMNS.map((column) => at(row, column).toFixed(2)).join(' | ')} |`),
    '',
    'floor cost = floor − bare of the same row; multiples of it (targets from issue #22):',
  ];
  ROWS.forEach((row, index) => {
    const floor = at(row, 'floor') - at(row, 'bare');
    const direct = index === 0;
    const unsampled = (at(row, 'ours:u') - at(row, 'sdk:u')) / floor;
    const stack = (at(row, 'ours') - at(row, 'ours stacks off')) / floor;
    const off = at(row, 'ours stacks off') / at(row, 'contrib');
    const unsampledContrib = (at(row, 'ours:u') - at(row, 'sdk:u')) / (at(row, 'contrib:u') - at(row, 'sdk:u'));
    lines.push(
      `  ${row}: floor ${floor.toFixed(2)} µs; ours:u − sdk:u = ${unsampled.toFixed(2)}× floor (target ≤ ${direct ? 2.5 : 5}×), ` +
        `${unsampledContrib.toFixed(2)}× contrib's unsampled cost; stack (ours − stacks off) = ${stack.toFixed(2)}× floor (target ≤ ${direct ? 2.5 : 4}×); ` +
        `stacks off / contrib = ${off.toFixed(2)}× (target ≤ 1.0×)`,
    );
  });
  return lines.join('\n');
}
