// What the pool bench measures: per pool library a suite of variants (one process each) and
// tasks (run in each variant's process), and the ratios the project tracks.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

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

/** Library frames between the application and the pool in the "library path" tasks. */
export const LIBRARY_PATH_FRAMES = 12;
export const FLOOR_TASK = 'floor: 1-frame Error.captureStackTrace, positions read';
export const EMPTY_TASK = 'empty task (the harness, taken off the floor)';
const SHALLOW_TASK = 'acquire+release, shallow caller';
const DEEP_TASK = `acquire+release, caller ${DEEP_CALLER_FRAMES} frames deep`;
const LIBRARY_TASK = `acquire+release, under a ${LIBRARY_PATH_FRAMES}-frame library path`;

/**
 * The unit the stack's cost is reported in, measured in every worker of the same run: one
 * 1-frame capture whose frame position is read, the least any call-site capture can cost.
 */
const floorTask = {
  name: FLOOR_TASK,
  // Run bare: no request span around it, no pool, no instrumentation involved.
  bare: true,
  run: floorCapture,
};

/** What the harness itself costs per bare iteration: the floor is reported net of it. */
const emptyTask = { name: EMPTY_TASK, bare: true, run: () => undefined };

function readPosition(_error, sites) {
  const site = sites[0];
  return site === undefined ? '' : `${site.getScriptNameOrSourceURL()}:${site.getLineNumber()}:${site.getColumnNumber()}`;
}

/**
 * The floor's one capture: the frame above `boundary`, its position read. The bench's own, never
 * the package's: the floor must not move when the package's capture does.
 */
export function captureOneFrameAbove(boundary) {
  const holder = {};
  const savedLimit = Error.stackTraceLimit;
  const savedPrepare = Error.prepareStackTrace;
  Error.stackTraceLimit = 1;
  Error.prepareStackTrace = readPosition;
  try {
    Error.captureStackTrace(holder, boundary);
    return holder.stack;
  } finally {
    Error.prepareStackTrace = savedPrepare;
    Error.stackTraceLimit = savedLimit;
  }
}

export function floorCapture() {
  return captureOneFrameAbove(floorCapture);
}

/**
 * An "ORM" of the bench's own: a module under a node_modules folder (written once into the
 * repository's .cache/), so V8 reports its frames as a dependency's. `acquireThrough(pool)` calls
 * `pool.acquire()` from LIBRARY_PATH_FRAMES frames of its own. `checkOutOnItsOwn(pool, method)`
 * is a library's own background work (a session store's prune, a job queue's poll): on a later
 * turn, from its own callback, it calls `pool[method]()` under as many frames of its own, with no
 * application frame on the stack, and resolves to what the pool lent.
 */
export function libraryPath() {
  const dir = fileURLToPath(new URL('../../../.cache/pool-leak-bench/node_modules/bench-orm-path/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}index.js`;
  writeFileSync(
    file,
    `'use strict';
function through(depth, take) {
  return depth === 1 ? take() : through(depth - 1, take);
}
exports.acquireThrough = function acquireThrough(pool) {
  return through(${LIBRARY_PATH_FRAMES - 2}, function acquire() { return pool.acquire(); });
};
exports.checkOutOnItsOwn = function checkOutOnItsOwn(pool, method) {
  return new Promise((resolve, reject) => setImmediate(function poll() {
    through(${LIBRARY_PATH_FRAMES - 1}, function take() { return pool[method](); }).then(resolve, reject);
  }));
};
`,
  );
  return require(file);
}

/**
 * The stack's net cost per checkout (stacks on − stacks off) as a multiple of the floor, per
 * caller shape, with the targets (#10).
 */
const STACK_COST = [
  { task: SHALLOW_TASK, caller: 'direct caller', limit: 2.5 },
  { task: DEEP_TASK, caller: `${DEEP_CALLER_FRAMES}-deep caller` },
  { task: LIBRARY_TASK, caller: `${LIBRARY_PATH_FRAMES}-frame library path`, limit: 6 },
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
      { task: 'idle checkout+release', variant: STACKS_OFF, versus: 'contrib instrumentation-pg', limit: 1 },
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
      floorTask,
      emptyTask,
      {
        name: SHALLOW_TASK,
        async run(pool) {
          const resource = await pool.acquire();
          await pool.release(resource);
        },
      },
      {
        name: DEEP_TASK,
        async run(pool) {
          const resource = await atDepth(DEEP_CALLER_FRAMES, () => pool.acquire());
          await pool.release(resource);
        },
      },
      {
        name: LIBRARY_TASK,
        async run(pool, library) {
          const resource = await library.acquireThrough(pool);
          await pool.release(resource);
        },
      },
    ],
    library: libraryPath,
    stackCost: STACK_COST,
    targets: [
      ...[SHALLOW_TASK, DEEP_TASK, LIBRARY_TASK].flatMap((task) => [
        { task, variant: STACKS_ON, versus: 'contrib instrumentation-generic-pool', limit: 1.2 },
        { task, variant: STACKS_OFF, versus: 'contrib instrumentation-generic-pool', limit: 1 },
      ]),
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
      floorTask,
      emptyTask,
      {
        name: SHALLOW_TASK,
        async run(pool) {
          const resource = await pool.acquire().promise;
          pool.release(resource);
        },
      },
      {
        name: DEEP_TASK,
        async run(pool) {
          const resource = await atDepth(DEEP_CALLER_FRAMES, () => pool.acquire().promise);
          pool.release(resource);
        },
      },
      {
        name: LIBRARY_TASK,
        async run(pool, library) {
          const resource = await library.acquireThrough(pool).promise;
          pool.release(resource);
        },
      },
    ],
    library: libraryPath,
    stackCost: STACK_COST,
    targets: [],
  },
  {
    name: 'sequelize-pool',
    server: 'postgres',
    description: 'real PostgreSQL, Sequelize 6 (sequelize-pool) pool max 4 (warm)',
    variants: poolLeakVariants,
    async open(connection) {
      const { Sequelize } = require('sequelize');
      const { host, port, user, password, database } = connection;
      const sequelize = new Sequelize({ dialect: 'postgres', host, port, database, username: user, password, logging: false, pool: { max: 4, min: 4 } });
      await Promise.all(Array.from({ length: 4 }, () => sequelize.query('SELECT 1', { type: 'SELECT' })));
      return sequelize;
    },
    close: (sequelize) => sequelize.close(),
    tasks: [
      {
        name: 'sequelize.query SELECT 1',
        async run(sequelize) {
          await sequelize.query('SELECT 1', { type: 'SELECT' });
        },
      },
      {
        name: 'transaction(cb) + SELECT 1',
        async run(sequelize) {
          await sequelize.transaction((transaction) => sequelize.query('SELECT 1', { type: 'SELECT', transaction }));
        },
      },
    ],
    targets: [],
  },
  {
    name: 'postgres',
    server: 'postgres',
    description: 'real PostgreSQL, postgres.js max 4 (warm)',
    variants: poolLeakVariants,
    async open(connection) {
      const postgres = require('postgres');
      const sql = postgres({ ...connection, max: 4, onnotice: () => {} });
      const reserved = await Promise.all(Array.from({ length: 4 }, () => sql.reserve()));
      for (const connection of reserved) connection.release();
      return sql;
    },
    close: (sql) => sql.end({ timeout: 5 }),
    tasks: [
      {
        name: 'plain query SELECT 1',
        async run(sql) {
          await sql`SELECT 1`;
        },
      },
      {
        name: 'reserve + SELECT 1 + release',
        async run(sql) {
          const reserved = await sql.reserve();
          try {
            await reserved`SELECT 1`;
          } finally {
            reserved.release();
          }
        },
      },
    ],
    targets: [],
  },
  {
    name: 'redis',
    server: 'redis',
    description: 'real redis-server, node-redis createClientPool maximum 4 (warm)',
    variants: poolLeakVariants,
    async open(connection) {
      const { createClientPool } = require('redis');
      const pool = createClientPool(
        { socket: { host: connection.host, port: connection.port }, password: connection.password },
        { minimum: 4, maximum: 4 },
      );
      await pool.connect();
      await Promise.all(Array.from({ length: 4 }, () => pool.ping()));
      return pool;
    },
    close: (pool) => pool.close(),
    tasks: [
      {
        name: 'command PING',
        async run(pool) {
          await pool.ping();
        },
      },
      {
        name: 'execute(fn) + PING',
        async run(pool) {
          await pool.execute((client) => client.ping());
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
