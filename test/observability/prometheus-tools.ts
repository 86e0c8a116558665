// Debian's `prometheus` package: the `promtool` and `prometheus` binaries the observability
// tests run. Without them the suites are skipped with a banner, unless
// POOL_LEAK_REQUIRE_PROMETHEUS=1 (CI sets it): then their absence fails the run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/node-process';

export const REQUIRE_ENV = 'POOL_LEAK_REQUIRE_PROMETHEUS';
/** The shipped rules and dashboard, as the published package carries them. */
export const OBSERVABILITY_DIR = join(REPO_ROOT, 'packages', 'instrumentation-pool-leak', 'observability');
export const RULES_FILE = join(OBSERVABILITY_DIR, 'pool-leak.rules.yml');
export const DASHBOARD_FILE = join(OBSERVABILITY_DIR, 'pool-leak.dashboard.json');

const PLACES = ['/usr/bin', '/usr/local/bin', '/usr/sbin', '/opt/prometheus'];

/** Where both binaries are, or why the suite cannot run. */
export type PrometheusTools = { readonly promtool: string; readonly prometheus: string } | { readonly missing: string };

export function findPrometheusTools(): PrometheusTools {
  const find = (name: string) => PLACES.map((place) => join(place, name)).find((path) => existsSync(path));
  const promtool = find('promtool');
  const prometheus = find('prometheus');
  if (promtool === undefined || prometheus === undefined) {
    const absent = [promtool === undefined ? 'promtool' : undefined, prometheus === undefined ? 'prometheus' : undefined].filter(Boolean);
    return {
      missing: `no ${absent.join(' or ')} binary (looked in ${PLACES.join(', ')}); install them with: apt-get install -y prometheus`,
    };
  }
  return { promtool, prometheus };
}

/**
 * What a suite needing the binaries should do: run, skip (after a banner on stderr), or fail
 * because CI requires them. Called once per test file at collection time.
 */
export function prometheusToolsFor(suite: string): { run: { promtool: string; prometheus: string } } | { skip: string } | { fail: string } {
  const tools = findPrometheusTools();
  if (!('missing' in tools)) return { run: tools };
  if (process.env[REQUIRE_ENV] === '1') return { fail: `${REQUIRE_ENV}=1 but ${tools.missing}` };
  const banner = '!'.repeat(78);
  console.warn(`${banner}\n[observability] SKIPPING ${suite}: ${tools.missing}\n${banner}`);
  return { skip: tools.missing };
}

/** How a promtool run ended; `output` is stdout and stderr together, for assertion messages. */
export interface ToolRun {
  readonly status: number | null;
  readonly output: string;
}

/** Runs promtool to its end (bounded), with the arguments given. */
export function runPromtool(promtool: string, args: readonly string[], timeoutMs = 60_000): ToolRun {
  const run = spawnSync(promtool, args, { encoding: 'utf8', timeout: timeoutMs });
  const how = run.error ? `did not run: ${run.error.message}` : `exited with ${run.status}`;
  return { status: run.status, output: `promtool ${args.join(' ')} ${how}\n${run.stdout ?? ''}${run.stderr ?? ''}` };
}
