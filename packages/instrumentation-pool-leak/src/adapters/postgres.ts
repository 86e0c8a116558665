import { InstrumentationNodeModuleDefinition, InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import { ThenReadHooks } from './kit/call-site-hooks';
import { FreshBuilds } from './kit/fresh-builds';
import { replaceFunctionExport } from './kit/function-export';
import { defineAdapter, failingOnThrow, reportFrom } from './kit/kit';
import type {
  ConnectionFactory,
  PostgresConnection,
  PostgresFactory,
  PostgresOptions,
  PostgresQuery,
  PostgresQueryClass,
  PostgresQueryModule,
  ReservedSql,
  Sql,
} from './postgres-types';
import type { Lease, PoolProbe } from '../core';

const VERSIONS = ['>=3.0.0 <4'];

/** Who a query's handler belongs to: the pool itself, or a connection a lease holds. */
type Owner = { readonly pool: PostgresOptions } | { readonly pool: PostgresOptions; readonly lease: Lease; readonly held: object };

/**
 * postgres.js 3.x keeps its pool in the closure of `postgres()`, so the adapter replaces that
 * factory and the connection factory (module exports: the modules that imported them keep the
 * wrappers, which pass through once disabled) and patches `Query.prototype.handle`, where a
 * query starts, its `then` (run with the query's call site) and its class (see `rememberingQuery`). Leases: `sql.reserve()` until `release()`, `sql.begin()` until its promise settles
 * (granted when the body starts, in a transaction), and each plain query from its start until it
 * settles (granted when the pool gives it a connection). Queries on a reserved or transaction
 * `sql` are statements of that lease. `sql.end()` ends the leases still open when it resolves (the core's `poolEnded`).
 * The pool key is the options object the instance shares with its connections.
 */
export const postgresAdapter = defineAdapter(({ core, patcher }) => {
  const owners = new WeakMap<Function, Owner>();
  const queryLeases = new WeakMap<PostgresQuery, Lease>();
  /** Queries built in the current run: awaited in it, they keep the call site of the tagged template. */
  const fresh = new FreshBuilds();
  const thenHooks = new ThenReadHooks(core, fresh);
  /** The `Query` class each patched query module had before our subclass replaced it. */
  const originalQueries = new WeakMap<PostgresQueryModule, PostgresQueryClass>();
  /** Off while disabled: our subclass stays in postgres.js's closure and then only constructs. */
  let rememberingQueries = false;

  /**
   * `Query` made to remember where the application built it: ``sql`...` `` (and `sql.unsafe()`,
   * `sql.file()`) construct it synchronously in the application's call, but it runs from its
   * `then()` a promise job later. One capture per query; a query awaited in the run that built
   * it keeps that call site, so a plain service function that returns ``sql`...` `` is named,
   * not the caller that awaits it.
   */
  function rememberingQuery(Query: PostgresQueryClass): PostgresQueryClass {
    return class RememberedQuery extends Query {
      constructor(...args: unknown[]) {
        super(...args);
        if (!rememberingQueries) return;
        try {
          core().callSites.remember(this, RememberedQuery);
          fresh.add(this);
        } catch (error) {
          reportFrom(core, 'postgres query call site', error);
        }
      }
    };
  }
  /** Above 0 while `begin()` sends its BEGIN: that query belongs to the transaction's lease. */
  let insideBegin = 0;

  const handlerOf = (sql: Sql) => sql.unsafe('').handler; // A query never run: only its handler is read.
  const own = (sql: Sql, owner: Owner) => owners.set(handlerOf(sql), owner);
  /** Ends a lease: a checkin when held, else a failed checkout. */
  const end = (lease: Lease, boundary: Function, failure?: { error: unknown; destroyed: boolean }) => {
    if (lease.isHeld) lease.checkin(failure?.destroyed === true, boundary);
    else if (failure !== undefined) lease.failed(failure.error);
  };
  const ending = (error: unknown) => ({ error, destroyed: isConnectionError(error) });

  function instrument(sql: Sql): void {
    const pool = sql.options;
    own(sql, { pool });
    const { reserve, begin, end: endPool } = sql;
    sql.reserve = function reserveLeased(this: unknown, ...args: unknown[]) {
      const lease = core().checkout(pool, probe, reserveLeased);
      if (lease === undefined) return reserve.apply(this, args);
      return failingOnThrow(lease, reserve, this, args).then(
        (reserved) => {
          lease.granted(reserved);
          own(reserved, { pool, lease, held: reserved });
          wrapRelease(reserved);
          return reserved;
        },
        (error: unknown) => {
          end(lease, reserveLeased, ending(error));
          throw error;
        },
      );
    };
    sql.begin = function beginLeased(this: unknown, ...args: unknown[]) {
      const bodyAt = typeof args[1] === 'function' ? 1 : 0;
      const body = args[bodyAt];
      const lease = typeof body === 'function' ? core().checkout(pool, probe, beginLeased) : undefined;
      if (lease === undefined) return begin.apply(this, args);
      args[bodyAt] = function transaction(this: unknown, scope: Sql) {
        lease.granted(scope);
        lease.transactionBegan();
        own(scope, { pool, lease, held: scope });
        return lease.runInCallerContext(body as (scope: Sql) => unknown, this, [scope]);
      };
      insideBegin++;
      let result: Promise<unknown>;
      try {
        result = failingOnThrow(lease, begin, this, args);
      } finally {
        insideBegin--;
      }
      return result.then(
        (value) => (end(lease, beginLeased), value),
        (error: unknown) => {
          end(lease, beginLeased, ending(error));
          throw error;
        },
      );
    };
    // Once ended, postgres.js serves nobody (reserve() calls still queued never settle) and
    // has closed every connection, reserved ones included.
    sql.end = function endLeases(this: unknown, ...args: unknown[]) {
      const endAll = () => core().poolEnded(pool, endLeases, true);
      return endPool.apply(this, args).then(
        (value) => (endAll(), value),
        (error: unknown) => {
          endAll();
          throw error;
        },
      );
    };
  }

  function wrapRelease(reserved: ReservedSql): void {
    const release = reserved.release;
    reserved.release = function releaseLeased(this: unknown, ...args: unknown[]) {
      core().releaseConnection(reserved, false, releaseLeased);
      return release.apply(this, args);
    };
  }

  /** A query starts: a lease of its own on the pool's handler, a statement on a held one's. */
  function started(query: PostgresQuery, boundary: Function): void {
    const owner = owners.get(query.handler);
    if (owner === undefined || query.cursorRows !== undefined) return;
    if ('lease' in owner) {
      const lease = core().statementIssued(owner.held, boundary, query.strings[0]);
      // postgres.js keeps no ReadyForQuery status: the core tells the state from the statement and its outcome.
      if (lease !== undefined) onSettle(query, (_error, failed) => lease.statementSettled(failed));
      return;
    }
    if (insideBegin > 0) return;
    const pool = owner.pool;
    const lease = core().checkout(pool, probe, boundary);
    if (lease === undefined) return;
    queryLeases.set(query, lease);
    onSettle(query, (error, failed) => {
      queryLeases.delete(query);
      // Run by a connection it made open (connection.js runs that first query itself): granted now.
      if (!failed) lease.granted();
      end(lease, started, failed ? ending(error) : undefined);
    });
  }

  const granting = (connection: PostgresConnection) => (query: PostgresQuery) => queryLeases.get(query)?.granted(connection);

  return [
    new InstrumentationNodeModuleDefinition('postgres', VERSIONS, (exports: unknown) => replaceFunctionExport(exports, wrapFactory), undefined, [
      ...['postgres/cjs/src/connection.js', 'postgres/src/connection.js'].map(
        // index.js keeps the factory it imported: nothing to put back; the wrappers go inert.
        (name) => new InstrumentationNodeModuleFile(name, VERSIONS, (exports: unknown) => replaceFunctionExport(exports, wrapConnectionFactory), () => {}),
      ),
      ...['postgres/cjs/src/query.js', 'postgres/src/query.js'].map(
        (name) =>
          new InstrumentationNodeModuleFile(
            name,
            VERSIONS,
            (exports: PostgresQueryModule) => {
              const Query = originalQueries.get(exports) ?? exports.Query;
              patcher.wrap(Query.prototype, 'handle', (original) =>
                function handle(this: PostgresQuery) {
                  if (!this.executed) started(this, handle);
                  return original.apply(this);
                },
              );
              thenHooks.patch(Query.prototype);
              rememberingQueries = true;
              if (!originalQueries.has(exports)) {
                originalQueries.set(exports, Query);
                // index.js takes `Query` from these exports when it loads, after this patch.
                exports.Query = rememberingQuery(Query);
              }
              return exports;
            },
            (exports?: PostgresQueryModule) => {
              rememberingQueries = false;
              if (exports === undefined) return;
              const Query = originalQueries.get(exports) ?? exports.Query;
              patcher.unwrap(Query.prototype, 'handle');
              thenHooks.unpatch(Query.prototype);
            },
          ),
      ),
    ]),
  ];

  function wrapFactory(factory: PostgresFactory): PostgresFactory {
    return function postgres(this: unknown, ...args: unknown[]) {
      const sql = factory.apply(this, args);
      try {
        instrument(sql);
      } catch (error) {
        reportFrom(core, 'postgres instance', error);
      }
      return sql;
    };
  }

  function wrapConnectionFactory(factory: ConnectionFactory): ConnectionFactory {
    return function Connection(this: unknown, ...args: unknown[]) {
      const connection = factory.apply(this, args);
      // Pool connections get the pool's queues; cancel requests are made without.
      if (args.length > 1 && typeof connection?.execute === 'function') {
        const execute = connection.execute;
        const grant = granting(connection);
        connection.execute = (query) => (grant(query), execute(query));
        // A query that opens a connection is run by connection.js internally once connected:
        // its grant is seen when it settles, so the connect counts as wait.
      }
      return connection;
    };
  }
});

const probe: PoolProbe<PostgresOptions> = {
  library: 'postgres',
  describe: (pool) => ({
    library: 'postgres',
    dbSystem: 'postgresql',
    serverAddress: pool.host?.[0],
    serverPort: pool.port?.[0],
    namespace: pool.database,
    maxConnections: pool.max,
  }),
};

/** postgres.js's own connection errors (`CONNECTION_CLOSED`, `CONNECTION_DESTROYED`, `CONNECT_TIMEOUT`, ...). */
function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code.startsWith('CONNECT');
}

/** Runs `settled` when the connection settles `query`, before the query's own promise does. */
function onSettle(query: PostgresQuery, settled: (error: unknown, failed: boolean) => void): void {
  const { resolve, reject } = query;
  query.resolve = (value) => (settled(undefined, false), resolve(value));
  query.reject = (error) => (settled(error, true), reject(error));
}
