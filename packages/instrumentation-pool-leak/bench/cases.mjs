// What the pg-pool bench measures: the variants (one process each) and the tasks (run in each).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * Each variant runs in its own process: instrumentations patch `pg` process-wide through
 * require-in-the-middle, so two of them in one process would measure each other.
 * `instrument` is called before `pg` is loaded; the modules are required lazily so that the
 * parent process, which only needs the names, loads none of them.
 */
export const VARIANTS = [
  {
    name: 'uninstrumented',
    instrument: () => undefined,
  },
  {
    name: 'pool-leak stacks on',
    instrument: () => {
      const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
      return new PoolLeakInstrumentation();
    },
  },
  {
    name: 'pool-leak stacks off',
    instrument: () => {
      const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
      return new PoolLeakInstrumentation({ stackFrames: 0 });
    },
  },
  {
    name: 'contrib instrumentation-pg',
    instrument: () => {
      const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg');
      return new PgInstrumentation();
    },
  },
];

export const BASELINE = 'uninstrumented';

/** One checkout cycle each; the pool is warm, so neither opens a connection. */
export const TASKS = [
  {
    name: 'idle checkout+release',
    async run(pool) {
      const client = await pool.connect();
      client.release();
    },
  },
  {
    name: 'checkout + SELECT 1 + release',
    async run(pool) {
      const client = await pool.connect();
      try {
        await client.query('SELECT 1');
      } finally {
        client.release();
      }
    },
  },
];

export function variantNamed(name) {
  const variant = VARIANTS.find((candidate) => candidate.name === name);
  if (variant === undefined) {
    throw new Error(`unknown variant "${name}"; known: ${VARIANTS.map((v) => v.name).join(', ')}`);
  }
  return variant;
}
