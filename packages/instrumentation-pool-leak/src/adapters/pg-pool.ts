import { context } from '@opentelemetry/api';
import { InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import { DB_SYSTEM_NAME_VALUE_POSTGRESQL } from '@opentelemetry/semantic-conventions';
import type { Lease } from '../lease';
import type { LeaseCore, PoolProbe } from '../lease-core';
import type { PoolDescription } from '../tracked-pool';
import { commonJsExports, type AdapterContext, type PoolAdapter } from './adapter';
import { serverOfConnectionString } from './connection-string';
import type {
  PgClient,
  PgConnectCallback,
  PgModule,
  PgPool,
  PgPoolClient,
  PgPoolConstructor,
  PgPoolOptions,
  PgRelease,
} from './pg-pool-types';

/** pg-pool 3.x, which is what `pg.Pool` (pg 8.x) extends. */
const SUPPORTED_VERSIONS = ['>=3.0.0 <4'];
const SUPPORTED_PG_VERSIONS = ['>=8.0.0 <9'];
const DEFAULT_MAX = 10;
/** No connection became free within `connectionTimeoutMillis`: the pool is exhausted. */
const POOL_TIMEOUT_MESSAGE = 'timeout exceeded when trying to connect';
/** Opening a new connection took longer than `connectionTimeoutMillis`: slow server, not a full pool. */
const CONNECT_TIMEOUT_MESSAGE = 'Connection terminated due to connection timeout';

/**
 * pg-pool: `Pool.prototype.connect` is the one acquire point (`pool.query` checks out through
 * it), and the pool hands out a fresh `client.release` per checkout, which is the release point.
 * pg's `Client.prototype.query` is the statement point (foreign-context check), and it runs query
 * callbacks in the caller's context: pg calls them from the socket's context, which belongs to
 * whichever request opened the connection, so `pool.query`'s own release would otherwise look
 * like a checkin from another trace.
 */
export const pgPoolAdapter: PoolAdapter = {
  library: 'pg-pool',
  moduleDefinitions({ core, patcher }: AdapterContext) {
    return [
      new InstrumentationNodeModuleDefinition(
        'pg-pool',
        SUPPORTED_VERSIONS,
        (moduleExports: PgPoolConstructor) => {
          const Pool = commonJsExports(moduleExports);
          patcher.wrap(Pool.prototype, 'connect', (original) => wrapConnect(original, core));
          return moduleExports;
        },
        (moduleExports: PgPoolConstructor | undefined) => {
          if (moduleExports === undefined) return;
          patcher.unwrap(commonJsExports(moduleExports).prototype, 'connect');
        },
      ),
      new InstrumentationNodeModuleDefinition(
        'pg',
        SUPPORTED_PG_VERSIONS,
        (moduleExports: PgModule) => {
          const Client = commonJsExports(moduleExports).Client;
          if (Client !== undefined) patcher.wrap(Client.prototype, 'query', (original) => wrapQuery(original, core));
          return moduleExports;
        },
        (moduleExports: PgModule | undefined) => {
          const Client = moduleExports === undefined ? undefined : commonJsExports(moduleExports).Client;
          if (Client !== undefined) patcher.unwrap(Client.prototype, 'query');
        },
      ),
    ];
  },
};

const pgPoolProbe: PoolProbe<PgPool> = {
  describe: describePgPool,
  pendingAhead(pool) {
    const waiting = pool.waitingCount;
    const full = pool.idleCount === 0 && pool.totalCount >= (pool.options.max ?? DEFAULT_MAX);
    return waiting > 0 || full ? waiting : undefined;
  },
  stats(pool) {
    const idle = pool.idleCount;
    return { idle, used: pool.totalCount - idle, pending: pool.waitingCount, max: pool.options.max ?? DEFAULT_MAX };
  },
  isTimeout: (error) => error instanceof Error && (error.message === POOL_TIMEOUT_MESSAGE || error.message === CONNECT_TIMEOUT_MESSAGE),
  isExhausted: (error) => error instanceof Error && error.message === POOL_TIMEOUT_MESSAGE,
};

/**
 * Every statement passes through here: it tells the core a statement runs on this client (the
 * foreign-context check) and binds a trailing callback to the context active at the call. The
 * common promise form (no callback) passes `arguments` on untouched, without copying them.
 */
function wrapQuery(original: PgClient['query'], core: () => LeaseCore): PgClient['query'] {
  return function query(this: PgClient) {
    core().statementIssued(this, query);
    const last = arguments.length - 1;
    const callback: unknown = arguments[last];
    if (last < 1 || typeof callback !== 'function') return original.apply(this, arguments as unknown as unknown[]);
    const args: unknown[] = Array.prototype.slice.call(arguments);
    args[last] = context.bind(context.active(), callback);
    return original.apply(this, args);
  };
}

function wrapConnect(original: PgPool['connect'], core: () => LeaseCore): PgPool['connect'] {
  return function connect(this: PgPool, callback?: PgConnectCallback) {
    const lease = core().checkout(this, pgPoolProbe, connect);
    if (lease === undefined) return original.apply(this, arguments as unknown as [PgConnectCallback?]);
    if (typeof callback === 'function') return original.call(this, leasedCallback(lease, callback));
    const result = original.apply(this, arguments as unknown as [PgConnectCallback?]);
    if (result === undefined || typeof result.then !== 'function') return result;
    return result.then(
      (client) => {
        grant(lease, client);
        return client;
      },
      (error: unknown) => {
        lease.failed(error);
        throw error;
      },
    );
  };
}

/** The application's callback, run in the caller's context with the lease's release. */
function leasedCallback(lease: Lease, callback: PgConnectCallback): PgConnectCallback {
  return function onCheckout(this: unknown, error, client, done) {
    let release = done;
    if (error) lease.failed(error);
    else if (client !== undefined) release = grant(lease, client);
    if (arguments.length < 3) return lease.runInCallerContext(callback, this, Array.from(arguments) as Parameters<PgConnectCallback>);
    return lease.runInCallerContext(callback, this, [error, client, release]);
  };
}

/** Marks the lease granted and puts a release in front of the pool's own one for this checkout. */
function grant(lease: Lease, client: PgPoolClient): PgRelease {
  lease.granted(client);
  const poolRelease = client.release;
  let released = false;
  const release: PgRelease = function release(this: unknown, error?: Error | boolean) {
    if (released) lease.invalidRelease('double_release', release);
    else {
      released = true;
      lease.checkin(Boolean(error), release);
    }
    // pg-pool decides what a release means (and throws on a double one): unchanged.
    return poolRelease.apply(this, arguments as unknown as [Error | boolean | undefined]);
  };
  client.release = release;
  return release;
}

/** Server, port and database the way pg resolves them: connection string first, then options. */
export function describePgPool(pool: PgPool): PoolDescription {
  const options: PgPoolOptions = pool.options ?? {};
  const fromUrl = serverOfConnectionString(options.connectionString);
  const host = fromUrl.host ?? options.host ?? process.env['PGHOST'] ?? 'localhost';
  const port = Number(fromUrl.port ?? options.port ?? process.env['PGPORT'] ?? 5432);
  const database = fromUrl.database ?? options.database ?? process.env['PGDATABASE'];
  return {
    library: 'pg-pool',
    dbSystem: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
    serverAddress: host,
    serverPort: Number.isFinite(port) ? port : undefined,
    namespace: database,
    maxConnections: options.max ?? DEFAULT_MAX,
  };
}
