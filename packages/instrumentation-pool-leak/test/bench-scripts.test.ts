import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CORE_BENCH = fileURLToPath(new URL('../bench/core.bench.mjs', import.meta.url));

// `npm run bench` is run by hand, not by CI: a script that no longer matches the core it reads
// would only be found then. The core bench reads the built modules directly, so it runs here,
// briefly (20 ms per task), and must reach its end with every row measured.
describe('bench scripts', () => {
  it('core.bench.mjs runs against the built core and prints every row', { timeout: 120_000 }, async () => {
    const { stdout } = await run(process.execPath, [CORE_BENCH], {
      env: { ...process.env, POOL_LEAK_BENCH_CORE_MS: '20' },
      maxBuffer: 4 * 1024 * 1024,
    });
    const timed = stdout.split('\n').filter((line) => / µs$/.test(line));
    expect(timed.length).toBeGreaterThanOrEqual(16);
    for (const line of timed) expect(Number(/(-?[\d.]+) µs$/.exec(line)?.[1])).not.toBeNaN();
    expect(stdout).toMatch(/sweep, 100,000 open leases, none expired +[\d.]+ µs/);
    expect(stdout).toMatch(/checkout\+grant\+checkin with 100,000 open leases +[\d.]+ µs/);
    expect(stdout).toMatch(/with the checkout span's content [\d.]+ µs: \+-?[\d.]+ µs per checkout/);
    // V8's part of each capture, on as many frames as the windows rule took for that caller (not a default).
    for (const [shape, frames] of [['direct caller', 3], ['12-frame library path', 16]]) {
      for (const reads of ['scripts', 'key fields']) {
        expect(stdout).toMatch(new RegExp(`${shape}, V8 alone, ${frames} frames: ${reads} +-?[\\d.]+ µs = -?[\\d.]+× floor`));
      }
    }
  });
});
