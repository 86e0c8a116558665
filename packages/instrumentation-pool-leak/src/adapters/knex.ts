import { InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import type { LeaseCore } from '../lease-core';
import type { CapturedStack } from '../stack';
import type { PoolDescription } from '../tracked-pool';
import { commonJsExports, type AdapterContext, type Patcher } from './adapter';
import { serverOfConnectionString, type ServerOfUrl } from './connection-string';
import type { KnexClient, KnexClientClass, KnexRunner, KnexRunnerClass, KnexTransaction, KnexTransactionClass } from './knex-types';

const SUPPORTED_VERSIONS = ['>=1.0.0 <4'];
/** Dialect client classes (knex 3.x; older versions have fewer), which override creation methods. */
const DIALECTS = ['better-sqlite3', 'cockroachdb', 'mariadb', 'mssql', 'mysql', 'mysql2', 'oracle', 'oracledb', 'pgnative', 'postgres', 'redshift', 'sqlite3'];
/** knex dialect name → semconv `db.system.name`. */
const DB_SYSTEMS: Readonly<Record<string, string>> = {
  postgresql: 'postgresql',
  pg: 'postgresql',
  pgnative: 'postgresql',
  cockroachdb: 'cockroachdb',
  redshift: 'aws.redshift',
  mysql: 'mysql',
  mysql2: 'mysql',
  mariadb: 'mariadb',
  mssql: 'microsoft.sql_server',
  oracledb: 'oracle.db',
  oracle: 'oracle.db',
  sqlite3: 'sqlite',
  'better-sqlite3': 'sqlite',
};

/**
 * Where each query builder, raw query and transaction was created by the application. knex
 * acquires their connection a job later — `await builder` calls the builder's `then` from a
 * promise job, a transaction starts from a `then` callback — when the application's frames are
 * gone from the stack, so the tarn checkout's own stack would name only knex.
 */
const origins = new WeakMap<object, CapturedStack>();

/** Client methods that create what later runs a query: builders, raw queries, transactions. */
const CREATION_METHODS = ['queryBuilder', 'raw', 'schemaBuilder', 'transaction'] as const;

/** Descriptions of the tarn pools knex created, by pool: knex knows the server, tarn does not. */
const knexPools = new WeakMap<object, PoolDescription>();

/** The description of a tarn pool that a knex client created, if it is one. */
export function knexPoolDescription(pool: object): PoolDescription | undefined {
  return knexPools.get(pool);
}

/**
 * knex on top of tarn (part of the `tarn` adapter: knex's pool IS a tarn pool, which the tarn
 * adapter patches). These hooks only carry the application's call site from where a query or
 * transaction is created to where knex acquires its connection, and describe knex's pools.
 */
export function knexModuleFiles({ core, patcher }: AdapterContext): InstrumentationNodeModuleFile[] {
  return [
    new InstrumentationNodeModuleFile(
      'knex/lib/client.js',
      SUPPORTED_VERSIONS,
      (moduleExports: KnexClientClass) => {
        const prototype = commonJsExports(moduleExports).prototype;
        patchCreationMethods(prototype, core, patcher);
        patcher.wrap(prototype, 'initializePool', (original) => describingPool(original));
        return moduleExports;
      },
      (moduleExports: KnexClientClass | undefined) => {
        if (moduleExports === undefined) return;
        const prototype = commonJsExports(moduleExports).prototype;
        unpatchCreationMethods(prototype, patcher);
        patcher.unwrap(prototype, 'initializePool');
      },
    ),
    new InstrumentationNodeModuleFile(
      'knex/lib/execution/runner.js',
      SUPPORTED_VERSIONS,
      (moduleExports: KnexRunnerClass) => {
        const prototype = commonJsExports(moduleExports).prototype;
        patcher.wrap(prototype, 'run', (original) => withBuilderCallSite(original, core));
        if (typeof prototype.stream === 'function') patcher.wrap(prototype, 'stream', (original) => withBuilderCallSite(original, core));
        return moduleExports;
      },
      (moduleExports: KnexRunnerClass | undefined) => {
        if (moduleExports === undefined) return;
        const prototype = commonJsExports(moduleExports).prototype;
        patcher.unwrap(prototype, 'run');
        patcher.unwrap(prototype, 'stream');
      },
    ),
    new InstrumentationNodeModuleFile(
      'knex/lib/execution/transaction.js',
      SUPPORTED_VERSIONS,
      (moduleExports: KnexTransactionClass) => {
        patcher.wrap(commonJsExports(moduleExports).prototype, 'acquireConnection', (original) => withOwnCallSite(original, core));
        return moduleExports;
      },
      (moduleExports: KnexTransactionClass | undefined) => {
        if (moduleExports !== undefined) patcher.unwrap(commonJsExports(moduleExports).prototype, 'acquireConnection');
      },
    ),
    ...DIALECTS.map(
      (dialect) =>
        new InstrumentationNodeModuleFile(
          `knex/lib/dialects/${dialect}/index.js`,
          SUPPORTED_VERSIONS,
          (moduleExports: KnexClientClass) => {
            patchCreationMethods(commonJsExports(moduleExports).prototype, core, patcher);
            return moduleExports;
          },
          (moduleExports: KnexClientClass | undefined) => {
            if (moduleExports !== undefined) unpatchCreationMethods(commonJsExports(moduleExports).prototype, patcher);
          },
        ),
    ),
  ];
}

/**
 * Wraps the creation methods this class defines itself (dialects override some of the base
 * client's): an inherited one is wrapped where it is defined.
 */
function patchCreationMethods(prototype: KnexClient, core: () => LeaseCore, patcher: Patcher): void {
  for (const name of CREATION_METHODS) {
    if (Object.prototype.hasOwnProperty.call(prototype, name)) patcher.wrap(prototype, name, (original) => rememberingCallSite(original, core));
  }
}

function unpatchCreationMethods(prototype: KnexClient, patcher: Patcher): void {
  for (const name of CREATION_METHODS) if (Object.prototype.hasOwnProperty.call(prototype, name)) patcher.unwrap(prototype, name);
}

/** Creates the builder (or transaction) and remembers the application's stack for it. */
function rememberingCallSite<Args extends unknown[]>(
  original: (this: KnexClient, ...args: Args) => object,
  core: () => LeaseCore,
): (this: KnexClient, ...args: Args) => object {
  return function createWithCallSite(this: KnexClient, ...args: Args): object {
    const created = original.apply(this, args);
    // A transaction's client runs everything on the transaction's connection: no checkout follows.
    if (this.transacting === true) return created;
    const callSite = core().captureCallSite(createWithCallSite);
    if (callSite !== undefined && typeof created === 'object' && created !== null) origins.set(created, callSite);
    return created;
  };
}

/** Runs the runner with its builder's remembered call site, for the checkout it starts. */
function withBuilderCallSite(original: (this: KnexRunner, ...args: unknown[]) => unknown, core: () => LeaseCore) {
  return function runWithCallSite(this: KnexRunner, ...args: unknown[]): unknown {
    const builder: unknown = this.builder;
    const callSite = typeof builder === 'object' && builder !== null ? origins.get(builder) : undefined;
    return core().withCallSite(callSite, () => original.apply(this, args));
  };
}

/** Runs the transaction's acquire with the call site remembered when it was created. */
function withOwnCallSite(original: (this: KnexTransaction, ...args: unknown[]) => unknown, core: () => LeaseCore) {
  return function acquireWithCallSite(this: KnexTransaction, ...args: unknown[]): unknown {
    return core().withCallSite(origins.get(this), () => original.apply(this, args));
  };
}

/** After knex built its own tarn pool: that pool's server, database and system, from knex. */
function describingPool(original: (this: KnexClient, ...args: unknown[]) => unknown) {
  return function initializePool(this: KnexClient, ...args: unknown[]): unknown {
    const result = original.apply(this, args);
    try {
      const pool = this.pool;
      if (pool !== undefined && this._ownsPool !== false && !knexPools.has(pool)) knexPools.set(pool, describeKnexClient(this));
    } catch {
      // A knex whose internals differ: the pool keeps tarn's own description.
    }
    return result;
  };
}

/** Server, port, database and system of a knex client; user and password are never read. */
export function describeKnexClient(client: KnexClient): PoolDescription {
  const settings = serverOf(client.connectionSettings);
  const dialect = client.dialect;
  return {
    library: 'tarn',
    dbSystem: dialect === undefined ? undefined : DB_SYSTEMS[dialect],
    serverAddress: settings.host,
    serverPort: settings.port,
    namespace: settings.database,
  };
}

function serverOf(settings: unknown): ServerOfUrl {
  if (typeof settings === 'string') return serverOfConnectionString(settings);
  if (typeof settings !== 'object' || settings === null) return {};
  const options = settings as { host?: unknown; server?: unknown; port?: unknown; database?: unknown; connectionString?: unknown };
  if (typeof options.connectionString === 'string') return serverOfConnectionString(options.connectionString);
  const host = typeof options.host === 'string' ? options.host : typeof options.server === 'string' ? options.server : undefined;
  const port = Number(options.port);
  return {
    ...(host !== undefined && { host }),
    ...(Number.isInteger(port) && port > 0 && { port }),
    ...(typeof options.database === 'string' && options.database !== '' && { database: options.database }),
  };
}
