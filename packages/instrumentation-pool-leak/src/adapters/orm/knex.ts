import { InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import type { AdapterCore, AdapterKit, MethodHook } from '../kit/kit';
import { carryingCaller, derivingCallSite, rememberingCaller, runningWithCallSite } from '../kit/call-site-hooks';
import { serverOfConnectionString, type ServerOfUrl } from '../kit/connection-string';
import type { KnexBatchInsert, KnexClient, KnexClientClass, KnexQueryBuilderClass, KnexRunner, KnexRunnerClass, KnexTransactionClass } from './knex-types';
import type { PoolDescription } from '../../core';

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
 * Client methods that create what later runs a query: builders, raw queries (and refs, which
 * are raw queries), schema builders, transactions. `knex(table)`, `knex.select()`, `knex.with()`
 * and the other query-interface methods, `knex.schema`, `knex.fn.now()` and
 * `transactionProvider()` all come through these.
 */
const CREATION_METHODS = ['queryBuilder', 'raw', 'ref', 'schemaBuilder', 'transaction'] as const;

/** The knex hooks of one instrumentation instance. */
export interface KnexHooks {
  readonly files: InstrumentationNodeModuleFile[];
  /** The description of a tarn pool that a knex client of this instance created, if it is one. */
  poolDescription(pool: object): PoolDescription | undefined;
}

/**
 * knex on top of tarn (part of the `tarn` adapter: knex's pool IS a tarn pool, which the tarn
 * adapter patches). These hooks describe knex's pools and carry the application's call site
 * from where a query or transaction is created to where knex acquires its connection: `await
 * builder` calls the builder's `then` from a promise job, and a transaction acquires from a
 * `then` callback, when the application's frames are gone from the stack.
 */
export function knexHooks({ core, file }: AdapterKit): KnexHooks {
  /** Descriptions of the tarn pools knex created, by pool: knex knows the server, tarn does not. */
  const knexPools = new WeakMap<object, PoolDescription>();
  const batchInsert = batchInsertHook(core);
  const files = [
    file('knex/lib/client.js', SUPPORTED_VERSIONS, (Client: KnexClientClass, hook) => {
      hookCreationMethods(Client.prototype, core, hook);
      hook(Client.prototype, 'initializePool', (original) => describingPool(original, knexPools));
    }),
    // `new this.constructor(this.client)`: no client method sees a clone being made.
    file('knex/lib/query/querybuilder.js', SUPPORTED_VERSIONS, (QueryBuilder: KnexQueryBuilderClass, hook) => {
      hook(QueryBuilder.prototype, 'clone', (original) => derivingCallSite(original, core));
    }),
    file('knex/lib/execution/runner.js', SUPPORTED_VERSIONS, (Runner: KnexRunnerClass, hook) => {
      const builderOf = (runner: KnexRunner) => runner.builder;
      hook(Runner.prototype, 'run', (original) => runningWithCallSite(original, core, builderOf));
      if (typeof Runner.prototype.stream === 'function') hook(Runner.prototype, 'stream', (original) => runningWithCallSite(original, core, builderOf));
    }),
    file('knex/lib/execution/transaction.js', SUPPORTED_VERSIONS, (Transaction: KnexTransactionClass, hook) => {
      hook(Transaction.prototype, 'acquireConnection', (original) => runningWithCallSite(original, core));
    }),
    new InstrumentationNodeModuleFile('knex/lib/execution/batch-insert.js', SUPPORTED_VERSIONS, batchInsert.patch, batchInsert.unpatch),
    ...DIALECTS.map((dialect) =>
      file(`knex/lib/dialects/${dialect}/index.js`, SUPPORTED_VERSIONS, (Dialect: KnexClientClass, hook) => hookCreationMethods(Dialect.prototype, core, hook)),
    ),
  ];
  return { files, poolDescription: (pool) => knexPools.get(pool) };
}

/**
 * Wraps the creation methods this class defines itself (dialects override some of the base
 * client's): an inherited one is wrapped where it is defined.
 */
function hookCreationMethods(prototype: KnexClient, core: () => AdapterCore, hook: MethodHook): void {
  for (const name of CREATION_METHODS) {
    if (Object.prototype.hasOwnProperty.call(prototype, name)) {
      // A transaction's client runs everything on the transaction's connection: no checkout follows.
      hook(prototype, name, (original) => rememberingCaller(original, core, (client: KnexClient) => client.transacting === true));
    }
  }
}

/**
 * `knex.batchInsert()` opens its transaction a timer tick later, from knex's own frames. knex
 * keeps the function `lib/execution/batch-insert.js` exports in a closure, so the hook hands
 * knex a stand-in that runs the call with the application's call site: the transaction made
 * under it takes that call site (the OpenTelemetry context carries it through the timer). After
 * `disable()` the stand-in stays in knex's closure and calls knex's function straight through.
 */
function batchInsertHook(core: () => AdapterCore) {
  let enabled = false;
  const standIns = new WeakMap<KnexBatchInsert, KnexBatchInsert>();
  const standInFor = (original: KnexBatchInsert): KnexBatchInsert => {
    const carried = carryingCaller(original, core);
    return function batchInsert(this: unknown, ...args: unknown[]): unknown {
      return (enabled ? carried : original).apply(this, args);
    };
  };
  return {
    patch(moduleExports: KnexBatchInsert): KnexBatchInsert {
      enabled = true;
      if (typeof moduleExports !== 'function') return moduleExports;
      let standIn = standIns.get(moduleExports);
      if (standIn === undefined) {
        standIn = standInFor(moduleExports);
        standIns.set(moduleExports, standIn);
      }
      return standIn;
    },
    unpatch(): void {
      enabled = false;
    },
  };
}

/** After knex built its own tarn pool: that pool's server, database and system, from knex. */
function describingPool(original: (this: KnexClient, ...args: unknown[]) => unknown, knexPools: WeakMap<object, PoolDescription>) {
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
