import { carryingCaller } from './kit/call-site-hooks';
import { acquiring, defineAdapter, followPromise, releasing, type Method } from './kit/kit';
import type {
  Sequelize6ConnectionManager,
  Sequelize6ConnectionManagerClass,
  SequelizeConnectionOptions,
  SequelizeInstance,
  SequelizeModule,
  SequelizePool,
  SequelizePoolModule,
  SequelizePools,
  SequelizeTypeScriptModule,
} from './sequelize-pool-types';
import type { PoolDescription, PoolProbe } from '../core';

/** sequelize-pool 7.1 (Sequelize 6) and 8.x (Sequelize 7). */
const SUPPORTED_VERSIONS = ['>=7.0.0 <9'];
const SEQUELIZE_6 = ['>=6.0.0 <7'];
const SEQUELIZE_7 = ['>=7.0.0-alpha.0 <8'];
/** Sequelize dialect name → semconv `db.system.name`. */
const DB_SYSTEMS: Readonly<Record<string, string>> = {
  postgres: 'postgresql',
  mysql: 'mysql',
  mariadb: 'mariadb',
  mssql: 'microsoft.sql_server',
  sqlite: 'sqlite',
  sqlite3: 'sqlite',
  db2: 'ibm.db2',
  ibmi: 'ibm.db2',
  snowflake: 'snowflake',
  oracle: 'oracle.db',
};

/**
 * sequelize-pool, the pool of Sequelize 6 and 7: `Pool.prototype.acquire` is the acquire point,
 * `release` and `destroy` the release points (all take the driver's connection, so statements
 * the pg / mysql2 / mariadb adapters see on it are matched to the lease). The pool also destroys
 * idle connections itself, so a destroy is a checkin only while the lease is held.
 *
 * Sequelize describes its pools (server, database, dialect; never credentials), and its entry
 * points carry the application's call site to the checkout, which Sequelize makes after awaits
 * inside its own code (`Model.findAll` → `sequelize.query` → retry → `getConnection`).
 */
export const sequelizePoolAdapter = defineAdapter(({ core, module, file }) => {
  /** What Sequelize said about each of its pools; a pool it never named is the library's own. */
  const descriptions = new WeakMap<object, PoolDescription>();
  /** sequelize-pool's `TimeoutError` class of every copy patched (its instances are named `Error`). */
  const timeoutErrors = new WeakSet<Function>();
  const probe = sequelizePoolProbe(descriptions, timeoutErrors);
  const carried = <This, Args extends unknown[], Result>(original: Method<This, Args, Result>, describe?: (self: This) => void) =>
    carryingCaller(describe === undefined ? original : describing(original, describe), core);
  const describeSequelize7 = (sequelize: SequelizeInstance) => describePools(descriptions, sequelize.pool, sequelize.options?.replication, sequelize.dialect?.name);
  return [
    module('sequelize-pool', SUPPORTED_VERSIONS, (pool: SequelizePoolModule, hook) => {
      if (typeof pool.TimeoutError === 'function') timeoutErrors.add(pool.TimeoutError);
      const prototype = pool.Pool.prototype;
      hook(prototype, 'acquire', (original) => acquiring(core, probe, original, (lease, run) => followPromise(lease, run())));
      hook(prototype, 'release', (original) => releasing(core, original));
      hook(prototype, 'destroy', (original) => releasing(core, original, { destroyed: true, onlyHeld: true }));
    }),
    module('sequelize', SEQUELIZE_6, undefined, [
      file('sequelize/lib/sequelize.js', SEQUELIZE_6, (sequelize: SequelizeModule, hook) => {
        hook(sequelize.Sequelize.prototype, 'query', (original) => carried(original));
        hook(sequelize.Sequelize.prototype, 'transaction', (original) => carried(original));
      }),
      file('sequelize/lib/dialects/abstract/connection-manager.js', SEQUELIZE_6, (manager: Sequelize6ConnectionManagerClass, hook) => {
        hook(manager.prototype, 'getConnection', (original) => describing(original, (self: Sequelize6ConnectionManager) => {
          const config = self.config;
          describePools(descriptions, self.pool, config?.replication ? config.replication : { write: config }, self.dialectName);
        }));
      }),
    ]),
    module('@sequelize/core', SEQUELIZE_7, undefined, [
      file('@sequelize/core/lib/sequelize.js', SEQUELIZE_7, (sequelize: SequelizeModule, hook) => {
        hook(sequelize.Sequelize.prototype, 'queryRaw', (original) => carried(original, describeSequelize7));
      }),
      file('@sequelize/core/lib/sequelize-typescript.js', SEQUELIZE_7, (sequelize: SequelizeTypeScriptModule, hook) => {
        const prototype = sequelize.SequelizeTypeScript.prototype;
        hook(prototype, 'transaction', (original) => carried(original, describeSequelize7));
        hook(prototype, 'startUnmanagedTransaction', (original) => carried(original, describeSequelize7));
        hook(prototype, 'withConnection', (original) => carried(original, describeSequelize7));
      }),
    ]),
  ];
});

function sequelizePoolProbe(descriptions: WeakMap<object, PoolDescription>, timeoutErrors: WeakSet<Function>): PoolProbe<SequelizePool> {
  const isTimeout = (error: unknown) => error instanceof Error && timeoutErrors.has(error.constructor);
  return {
    library: 'sequelize-pool',
    describe: (pool) => ({
      ...(descriptions.get(pool) ?? { library: 'sequelize-pool', name: typeof pool.name === 'string' ? pool.name : undefined }),
      maxConnections: pool.maxSize,
    }),
    pendingAhead(pool) {
      const waiting = pool.waiting;
      const full = pool.available === 0 && pool.size >= pool.maxSize;
      return waiting > 0 || full ? waiting : undefined;
    },
    stats: (pool) => ({ idle: pool.available, used: pool.using, pending: pool.waiting, max: pool.maxSize }),
    isTimeout,
    isExhausted: isTimeout,
  };
}

/** Runs `describe(this)` (never throwing) before the original method. */
function describing<This, Args extends unknown[], Result>(original: Method<This, Args, Result>, describe: (self: This) => void): Method<This, Args, Result> {
  return function describeThenCall(this: This, ...args: Args): Result {
    try {
      describe(this);
    } catch {
      // A Sequelize whose internals differ: its pools keep the library's own description.
    }
    return original.apply(this, args);
  };
}

/** Sequelize's pools (one, or `read` and `write`) described from its write connection options, once. */
function describePools(descriptions: WeakMap<object, PoolDescription>, pool: unknown, replication: { readonly write?: SequelizeConnectionOptions } | false | undefined, dialect: unknown): void {
  if (typeof pool !== 'object' || pool === null) return;
  const pools = pool as SequelizePools;
  const members = [pools.read, pools.write].filter((member): member is object => typeof member === 'object' && member !== null);
  const targets = members.length > 0 ? members : [pool];
  if (targets.every((target) => descriptions.has(target))) return;
  const options = (replication === false ? undefined : replication?.write) ?? {};
  const port = Number(options.port);
  const description: PoolDescription = {
    library: 'sequelize-pool',
    dbSystem: typeof dialect === 'string' ? DB_SYSTEMS[dialect] : undefined,
    serverAddress: typeof options.host === 'string' && options.host !== '' ? options.host : undefined,
    serverPort: Number.isInteger(port) && port > 0 ? port : undefined,
    namespace: typeof options.database === 'string' && options.database !== '' ? options.database : undefined,
  };
  for (const target of targets) descriptions.set(target, description);
}
