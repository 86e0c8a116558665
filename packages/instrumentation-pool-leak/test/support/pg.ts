// Loads pg after the instrumentation is registered and builds pools against the test server.
import { createRequire } from 'node:module';
import { inject } from 'vitest';
import type * as PgModule from 'pg';

export type Pg = typeof PgModule;

const requireFromHere = createRequire(import.meta.url);

/** `require('pg')`: call only after setupTracing(), so require-in-the-middle patches pg-pool. */
export function loadPg(): Pg {
  return requireFromHere('pg') as Pg;
}

/** Connection settings of the real PostgreSQL the global setup started. */
export function postgresConfig() {
  return inject('postgres');
}
