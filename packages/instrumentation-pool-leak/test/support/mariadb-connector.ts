// Loads MariaDB Connector/Node.js after the instrumentation is registered, and small helpers for
// its test file. `require('mariadb')` and `require('mariadb/callback')` load the connector's two
// CommonJS bundles (3.5.3+), each with its own copy of the pool classes.
//
// POOL_LEAK_MARIADB_DIR=<dir>/node_modules/mariadb runs the suite against another 3.x install
// (e.g. `npm install --prefix /tmp/mdb-3.4.7 mariadb@3.4.7`): 3.4.x is plain CommonJS files,
// 3.5.0-3.5.2 are ES modules that `require()` loads, 3.5.3+ ship the bundles.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { context, ROOT_CONTEXT, type Span } from '@opentelemetry/api';
import type * as MariaDbModule from 'mariadb';
import type * as MariaDbCallbackModule from 'mariadb/callback';
import type { TestTracing } from './tracing';
import { requireMariaDbConfig } from './mariadb';

export type MariaDb = typeof MariaDbModule;
export type MariaDbCallback = typeof MariaDbCallbackModule;

const requireFromHere = createRequire(import.meta.url);
const MARIADB = process.env['POOL_LEAK_MARIADB_DIR'] ?? 'mariadb';

/** `require('mariadb')`: call only after setupTracing(), so require-in-the-middle patches it. */
export function loadMariaDb(): MariaDb {
  return requireFromHere(MARIADB) as MariaDb;
}

/** `require('mariadb/callback')`, the callback API (its own bundle). */
export function loadMariaDbCallback(): MariaDbCallback {
  return requireFromHere(`${MARIADB}/callback`) as MariaDbCallback;
}

/** Connection settings of the MariaDB the global setup started, as connector options. */
export function mariadbOptions() {
  const { host, port, user, password, database } = requireMariaDbConfig();
  return { host, port, user, password, database };
}

/** Leases the instrumentation still holds open (its lease core is not public). */
export { openLeaseCountOf as openLeaseCount } from './tracing';

type ProbeOptions = { connectionLimit: number; minimumIdle: number };

/**
 * The prototype of the connector's internal pool behind a front-end from `createPool`, found the
 * way the adapter finds it (the bundles export no class): to check what is wrapped.
 */
export function internalPoolPrototype(createPool: (options: ProbeOptions) => object): Record<string, unknown> {
  const emitters = EventEmitter as unknown as { init: (this: object, ...args: unknown[]) => unknown };
  const init = emitters.init;
  const constructed: object[] = [];
  emitters.init = function noteEmitter(this: object, ...args: unknown[]) {
    constructed.push(this);
    return init.apply(this, args);
  };
  let frontEnd: object;
  try {
    frontEnd = createPool({ connectionLimit: 1, minimumIdle: 0 });
  } finally {
    emitters.init = init;
  }
  void Promise.resolve((frontEnd as { end(): unknown }).end()).catch(() => undefined);
  const pool = constructed.find((object) => object !== frontEnd && '_handleRelease' in object);
  if (pool === undefined) throw new Error('no internal pool constructed');
  return Object.getPrototypeOf(pool) as Record<string, unknown>;
}

/** Runs `work` in a new root span (its own trace), as an unrelated request would. */
export function inRootSpan<T>(tracing: TestTracing, name: string, work: (span: Span) => Promise<T> | T): Promise<T> {
  return context.with(ROOT_CONTEXT, () =>
    tracing.tracer.startActiveSpan(name, async (span) => {
      try {
        return await work(span);
      } finally {
        span.end();
      }
    }),
  );
}

/** Collects unhandled rejections while installed. */
export function collectUnhandledRejections(): { readonly reasons: unknown[]; stop(): void } {
  const reasons: unknown[] = [];
  const onRejection = (reason: unknown) => reasons.push(reason);
  process.on('unhandledRejection', onRejection);
  return { reasons, stop: () => process.off('unhandledRejection', onRejection) };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms for at most `timeoutMs`; throws naming `what` otherwise. */
export async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
