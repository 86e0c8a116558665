// Loads mysql2 after the instrumentation is registered, and small helpers for its test files.
//
// POOL_LEAK_MYSQL2_DIR=<dir>/node_modules/mysql2 runs the same suites against another mysql2 3.x
// install (e.g. `npm install --prefix /tmp/m2-3.0.0 mysql2@3.0.0`): the adapter hooks files that
// moved between releases, and the suites compare with uninstrumented mysql2 instead of assuming
// one release's behaviour.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Mysql2Module from 'mysql2';
import type * as Mysql2PromiseModule from 'mysql2/promise';
import { requireMariaDbConfig } from './mariadb';

export type Mysql2 = typeof Mysql2Module;
export type Mysql2Promise = typeof Mysql2PromiseModule;

const requireFromHere = createRequire(import.meta.url);
const MYSQL2 = process.env['POOL_LEAK_MYSQL2_DIR'] ?? 'mysql2';

/** `require('mysql2')`: call only after setupTracing(), so require-in-the-middle patches it. */
export function loadMysql2(): Mysql2 {
  return requireFromHere(MYSQL2) as Mysql2;
}

/** `require('mysql2/promise')`, which loads mysql2's files without its `index.js`. */
export function loadMysql2Promise(): Mysql2Promise {
  return requireFromHere(`${MYSQL2}/promise`) as Mysql2Promise;
}

/** The version of the mysql2 under test, as `[major, minor, patch]`. */
export function mysql2Version(): [number, number, number] {
  const packageJson = requireFromHere.resolve(`${MYSQL2}/package.json`);
  const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
  const [major = 0, minor = 0, patch = 0] = version.split('.').map((part) => Number.parseInt(part, 10));
  return [major, minor, patch];
}

/** Connection settings of the MariaDB the global setup started, as mysql2 pool options. */
export function mysql2Options() {
  const { host, port, user, password, database } = requireMariaDbConfig();
  return { host, port, user, password, database };
}

/**
 * Leases the instrumentation still holds open. Reads the instrumentation's lease core, which it
 * does not expose publicly (see the adapter report: a public read-only count would serve here).
 */
export { openLeaseCountOf as openLeaseCount } from './tracing';

/** Collects unhandled rejections while installed; vitest would fail the file on one anyway. */
export function collectUnhandledRejections(): { readonly reasons: unknown[]; stop(): void } {
  const reasons: unknown[] = [];
  const onRejection = (reason: unknown) => reasons.push(reason);
  process.on('unhandledRejection', onRejection);
  return { reasons, stop: () => process.off('unhandledRejection', onRejection) };
}

/** The line of the caller of this function, as the stack shows it (source-mapped like ours). */
export function callerLine(): number {
  const line = new Error().stack?.split('\n')[2] ?? '';
  const match = /:(\d+):\d+\)?$/.exec(line);
  return match === null ? -1 : Number(match[1]);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until `condition()` holds, polling every 5 ms, at most `timeoutMs`; throws with `what`
 * otherwise. For server-side effects the test cannot await directly (a KILL reaching a socket).
 */
export async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
