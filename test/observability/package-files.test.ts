// The rules, the dashboard and their README are in the published package: `npm pack --dry-run`
// lists what `npm publish` would ship.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { REPO_ROOT } from '../support/node-process';

it('npm pack ships observability/ (rules, dashboard, README)', () => {
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: join(REPO_ROOT, 'packages', 'instrumentation-pool-leak'),
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(pack.status, `npm pack --dry-run: ${pack.stderr}`).toBe(0);
  const [packed] = JSON.parse(pack.stdout) as { files: { path: string }[] }[];
  const paths = (packed?.files ?? []).map((file) => file.path);
  expect(paths).toEqual(
    expect.arrayContaining(['observability/pool-leak.rules.yml', 'observability/pool-leak.dashboard.json', 'observability/README.md']),
  );
});
