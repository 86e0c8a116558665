import { context } from '@opentelemetry/api';
import { DB_SYSTEM_NAME_VALUE_POSTGRESQL } from '@opentelemetry/semantic-conventions';
import { serverOfConnectionString } from './kit/connection-string';
import { pgTransactionStatus } from './kit/server-status';
import {
  acquiring,
  defineAdapter,
  followPromise,
  leasedCallback,
  settleOnPromise,
  settlingCallback,
  type AdapterCore,
  type Method,
  withLengthOf,
} from './kit/kit';
import type { PgClient, PgConnectCallback, PgModule, PgPool, PgPoolClient, PgPoolConstructor, PgPoolOptions, PgRelease } from './pg-pool-types';
import type { Lease, PoolDescription, PoolProbe } from '../core';

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
export const pgPoolAdapter = defineAdapter(({ core, module }) => [
  module('pg-pool', SUPPORTED_VERSIONS, (Pool: PgPoolConstructor, hook) => {
    hook(Pool.prototype, 'connect', (original) => acquiring(core, pgPoolProbe, original, followConnect));
    hook(Pool.prototype, 'end', (original) => endingWaiters(original, core));
  }),
  module('pg', SUPPORTED_PG_VERSIONS, (pg: PgModule, hook) => {
    if (pg.Client !== undefined) hook(pg.Client.prototype, 'query', (original) => wrapQuery(original, core));
  }),
]);

const pgPoolProbe: PoolProbe<PgPool> = {
  library: 'pg-pool',
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
  reportedElsewhere: (pool) => (patchedByContribPg(pool) ? CONTRIB_PG_GAUGES : undefined),
  isTimeout: (error) => error instanceof Error && (error.message === POOL_TIMEOUT_MESSAGE || error.message === CONNECT_TIMEOUT_MESSAGE),
  isExhausted: (error) => error instanceof Error && error.message === POOL_TIMEOUT_MESSAGE,
};

/**
 * `@opentelemetry/instrumentation-pg` marks each pool it reports for with a private symbol
 * (`internal-types.ts` there: `Symbol('opentelemetry.instrumentation.pg.eventListenersSet')`),
 * set in its `Pool.prototype.connect` patch when it attaches the `connect`/`acquire`/`release`/
 * `remove` listeners that feed its `db.client.connection.count` and `pending_requests`; the same
 * call records `db.client.connection.max`. The listeners stay for the pool's life, even if that
 * instrumentation is disabled later, so the marker is exactly "this pool is reported elsewhere".
 */
const CONTRIB_PG_MARKER = 'opentelemetry.instrumentation.pg.eventListenersSet';
const CONTRIB_PG_GAUGES: ReadonlySet<string> = new Set([
  'db.client.connection.count',
  'db.client.connection.pending_requests',
  'db.client.connection.max',
]);

function patchedByContribPg(pool: PgPool): boolean {
  for (const symbol of Object.getOwnPropertySymbols(pool)) {
    if (symbol.description === CONTRIB_PG_MARKER && (pool as unknown as Record<symbol, unknown>)[symbol] === true) return true;
  }
  return false;
}

/**
 * Every statement passes through here: it tells the core a statement runs on this client (the
 * lease's statement count and state, the foreign-context check) and binds a trailing callback to
 * the context active at the call. On a held lease the statement is settled when pg answers: in
 * front of the callback, on the promise, or on a submittable's `end` event. Without a lease the
 * common promise form passes `arguments` on untouched, without copying them.
 */
function wrapQuery(original: PgClient['query'], core: () => AdapterCore): PgClient['query'] {
  return function query(this: PgClient) {
    const statement: unknown = arguments[0];
    const lease = core().statementIssued(this, query, statement);
    // pg keeps the server's transaction status from each ReadyForQuery: read when the lease is reported.
    lease?.readsServerStatusWith(pgTransactionStatus);
    const last = arguments.length - 1;
    const callback: unknown = arguments[last];
    if (last >= 1 && typeof callback === 'function') {
      const args: unknown[] = Array.prototype.slice.call(arguments);
      args[last] = context.bind(context.active(), lease === undefined ? callback : settlingCallback(lease, callback as Method<unknown, unknown[], unknown>));
      return lease === undefined ? original.apply(this, args) : settledIfThrown(lease, () => original.apply(this, args));
    }
    if (lease === undefined) return Reflect.apply(original, this, arguments);
    const result: unknown = settledIfThrown(lease, () => Reflect.apply(original, this, arguments));
    return settleOnCompletion(lease, statement, result);
  };
}

/** pg throws synchronously for a query it refuses outright (no text): that statement settled. */
function settledIfThrown<T>(lease: Lease, send: () => T): T {
  try {
    return send();
  } catch (error) {
    lease.statementSettled();
    throw error;
  }
}

/**
 * The promise form answers on the promise pg returns, which is then what the application gets
 * back, settling the same way; a submittable (pg-cursor, pg-query-stream, a `Query`) settles on
 * its `end` event. No `error` listener is ever added: that would swallow the submittable's
 * unhandled error.
 */
function settleOnCompletion(lease: Lease, statement: unknown, result: unknown): unknown {
  if (isSubmittable(statement)) {
    if (typeof statement.once === 'function') statement.once('end', lease.settler);
    else lease.statementSettled();
    return result;
  }
  return settleOnPromise(lease, result);
}

function isSubmittable(statement: unknown): statement is { submit: Function; once?: (event: string, listener: () => void) => unknown } {
  return typeof statement === 'object' && statement !== null && typeof (statement as { submit?: unknown }).submit === 'function';
}

/**
 * pg-pool never settles the checkouts still queued when `end()` runs: their leases end once the
 * pool's own `end` returned. Held clients are checked in by their release, which pg-pool still
 * takes (it then closes the client).
 */
function endingWaiters(original: PgPool['end'], core: () => AdapterCore): PgPool['end'] {
  return withLengthOf(original, function end(this: PgPool) {
    const result = Reflect.apply(original, this, arguments) as ReturnType<PgPool['end']>;
    core().poolEnded(this, end);
    return result;
  });
}

/**
 * The callback form gets the callback wrapped (its third argument, when pg-pool passes one,
 * becomes this checkout's release); the promise form is followed to its client.
 */
function followConnect(lease: Lease, run: (args?: [PgConnectCallback?]) => ReturnType<PgPool['connect']>, pool: PgPool, [callback]: [PgConnectCallback?]) {
  if (typeof callback === 'function') {
    return run([
      leasedCallback(lease, callback, (granted: Lease, client: PgPoolClient, args: Parameters<PgConnectCallback>) => {
        const release = grant(granted, client, pool);
        if (args.length >= 3) args[2] = release;
      }),
    ]);
  }
  return followPromise(lease, run(), { grant: (granted: Lease, client: PgPoolClient) => grant(granted, client, pool) });
}

/**
 * Marks the lease granted and puts a release in front of the pool's own one for this checkout.
 * The checkin is destroyed when pg-pool will close the client rather than keep it: a release
 * with an error, a pool that is ending, a client whose connection is closed or closing.
 */
function grant(lease: Lease, client: PgPoolClient, pool: PgPool): PgRelease {
  lease.granted(client);
  const poolRelease = client.release;
  let released = false;
  const release: PgRelease = function release(this: unknown, error?: Error | boolean) {
    if (released) lease.invalidRelease('double_release', release);
    else {
      released = true;
      lease.checkin(Boolean(error) || pool.ending === true || client._queryable === false || client._ending === true, release);
    }
    // pg-pool decides what a release means (and throws on a double one): unchanged.
    return Reflect.apply(poolRelease, this, arguments) as void;
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
