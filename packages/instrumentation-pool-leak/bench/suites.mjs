// What the pool bench measures: per pool library a suite of variants (one process each) and
// tasks (run in each variant's process), and the ratios the project tracks.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const BASELINE = 'uninstrumented';
export const STACKS_ON = 'pool-leak stacks on';
export const STACKS_OFF = 'pool-leak stacks off';
/** Depth of the "deep caller" tasks: a checkout made below this many application frames. */
export const DEEP_CALLER_FRAMES = 60;

/**
 * Each variant runs in its own process: instrumentations patch libraries process-wide through
 * require-in-the-middle, so two of them in one process would measure each other. `instrument`
 * runs before the library is loaded; modules are required lazily so the parent loads none.
 */
const poolLeakVariants = [
  { name: BASELINE, instrument: () => undefined },
  {
    name: STACKS_ON,
    instrument: () => {
      const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
      return new PoolLeakInstrumentation();
    },
  },
  {
    name: STACKS_OFF,
    instrument: () => {
      const { PoolLeakInstrumentation } = require('opentelemetry-instrumentation-pool-leak');
      return new PoolLeakInstrumentation({ stackFrames: 0 });
    },
  },
];

/** Calls `fn` from `depth` frames further down the stack, as code deep in a framework would. */
export function atDepth(depth, fn) {
  return depth === 0 ? fn() : atDepth(depth - 1, fn);
}

/** In-memory resources: what a pool costs by itself, with nothing on the network. */
const inMemoryFactory = () => {
  let next = 0;
  return {
    create: async () => ({ id: ++next }),
    destroy: async () => {},
  };
};

const IN_MEMORY_MAX = 4;

export const SUITES = [
  {
    name: 'pg-pool',
    server: 'postgres',
    description: 'real PostgreSQL, pg.Pool max 4 (warm)',
    variants: [
      ...poolLeakVariants,
      {
        name: 'contrib instrumentation-pg',
        instrument: () => {
          const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg');
          return new PgInstrumentation();
        },
      },
    ],
    async open(connection) {
      const pg = require('pg');
      const pool = new pg.Pool({ ...connection, max: 4 });
      const clients = await Promise.all(Array.from({ length: 4 }, () => pool.connect()));
      await Promise.all(clients.map((client) => client.query('SELECT 1')));
      for (const client of clients) client.release();
      return pool;
    },
    close: (pool) => pool.end(),
    tasks: [
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
    ],
    targets: [
      { task: 'checkout + SELECT 1 + release', variant: STACKS_ON, versus: BASELINE, limit: 1.05 },
      { task: 'idle checkout+release', variant: STACKS_ON, versus: 'contrib instrumentation-pg', limit: 1.5 },
    ],
  },
  {
    name: 'mysql2',
    server: 'mariadb',
    description: 'real MariaDB, mysql2 createPool connectionLimit 4 (warm)',
    variants: poolLeakVariants,
    async open(connection) {
      const mysql = require('mysql2/promise');
      const pool = mysql.createPool({ ...connection, connectionLimit: 4 });
      const connections = await Promise.all(Array.from({ length: 4 }, () => pool.getConnection()));
      await Promise.all(connections.map((conn) => conn.query('SELECT 1')));
      for (const conn of connections) conn.release();
      return pool;
    },
    close: (pool) => pool.end(),
    tasks: [
      {
        name: 'idle checkout+release',
        async run(pool) {
          const conn = await pool.getConnection();
          conn.release();
        },
      },
      {
        name: 'checkout + SELECT 1 + release',
        async run(pool) {
          const conn = await pool.getConnection();
          try {
            await conn.query('SELECT 1');
          } finally {
            conn.release();
          }
        },
      },
    ],
    targets: [{ task: 'checkout + SELECT 1 + release', variant: STACKS_ON, versus: BASELINE, limit: 1.05 }],
  },
  {
    name: 'generic-pool',
    description: `in-memory resources, createPool max ${IN_MEMORY_MAX} (warm)`,
    variants: [
      ...poolLeakVariants,
      {
        name: 'contrib instrumentation-generic-pool',
        instrument: () => {
          const { GenericPoolInstrumentation } = require('@opentelemetry/instrumentation-generic-pool');
          return new GenericPoolInstrumentation();
        },
      },
    ],
    async open() {
      const genericPool = require('generic-pool');
      const pool = genericPool.createPool(inMemoryFactory(), { max: IN_MEMORY_MAX, min: IN_MEMORY_MAX });
      const resources = await Promise.all(Array.from({ length: IN_MEMORY_MAX }, () => pool.acquire()));
      await Promise.all(resources.map((resource) => pool.release(resource)));
      return pool;
    },
    close: async (pool) => {
      await pool.drain();
      await pool.clear();
    },
    tasks: [
      {
        name: 'acquire+release, shallow caller',
        async run(pool) {
          const resource = await pool.acquire();
          await pool.release(resource);
        },
      },
      {
        name: `acquire+release, caller ${DEEP_CALLER_FRAMES} frames deep`,
        async run(pool) {
          const resource = await atDepth(DEEP_CALLER_FRAMES, () => pool.acquire());
          await pool.release(resource);
        },
      },
    ],
    targets: [
      { task: 'acquire+release, shallow caller', variant: STACKS_ON, versus: 'contrib instrumentation-generic-pool', limit: 1.2 },
      {
        task: `acquire+release, caller ${DEEP_CALLER_FRAMES} frames deep`,
        variant: STACKS_ON,
        versus: 'contrib instrumentation-generic-pool',
        limit: 1.2,
      },
    ],
  },
  {
    name: 'tarn',
    description: `in-memory resources, tarn Pool max ${IN_MEMORY_MAX} (warm); no contrib instrumentation exists for tarn`,
    variants: poolLeakVariants,
    async open() {
      const { Pool } = require('tarn');
      const pool = new Pool({ ...inMemoryFactory(), min: 0, max: IN_MEMORY_MAX });
      const resources = await Promise.all(Array.from({ length: IN_MEMORY_MAX }, () => pool.acquire().promise));
      for (const resource of resources) pool.release(resource);
      return pool;
    },
    close: (pool) => pool.destroy(),
    tasks: [
      {
        name: 'acquire+release, shallow caller',
        async run(pool) {
          const resource = await pool.acquire().promise;
          pool.release(resource);
        },
      },
      {
        name: `acquire+release, caller ${DEEP_CALLER_FRAMES} frames deep`,
        async run(pool) {
          const resource = await atDepth(DEEP_CALLER_FRAMES, () => pool.acquire().promise);
          pool.release(resource);
        },
      },
    ],
    targets: [],
  },
];

export function suiteNamed(name) {
  const suite = SUITES.find((candidate) => candidate.name === name);
  if (suite === undefined) throw new Error(`unknown bench suite "${name}"; known: ${SUITES.map((s) => s.name).join(', ')}`);
  return suite;
}

export function variantOf(suite, name) {
  const variant = suite.variants.find((candidate) => candidate.name === name);
  if (variant === undefined) {
    throw new Error(`unknown variant "${name}" of ${suite.name}; known: ${suite.variants.map((v) => v.name).join(', ')}`);
  }
  return variant;
}
