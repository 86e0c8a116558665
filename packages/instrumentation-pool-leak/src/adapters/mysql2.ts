// Why this adapter is long (~340 lines): mysql2 lends the same pool through four faces — the
// callback Pool, the promise wrapper (`mysql2/promise`, which never loads `mysql2/index.js`),
// PoolCluster (whose nodes are pools created inside `add`) and the pool-level `query`/`execute`
// that check out and release on the application's behalf — and a connection can be released,
// destroyed or ended, each read differently. One file keeps mysql2's rules in one place.
import { context } from '@opentelemetry/api';
import { DB_SYSTEM_NAME_VALUE_MYSQL } from '@opentelemetry/semantic-conventions';
import { defineAdapter, hookWhereDefined, leasedCallback, type AdapterCore, type Method } from './kit/kit';
import { mysql2ServerDbSystem, mysqlTransactionStatus } from './kit/server-status';
import type {
  Mysql2Command,
  Mysql2Class,
  Mysql2Connection,
  Mysql2GetConnectionCallback,
  Mysql2Pool,
  Mysql2PoolCluster,
  Mysql2PoolClusterClass,
  Mysql2PoolConnection,
  Mysql2PromisePool,
  Mysql2PoolNamespace,
} from './mysql2-types';
import type { Lease, PoolDescription, PoolProbe } from '../core';

const SUPPORTED_VERSIONS = ['>=3.0.0 <4'];
const DEFAULT_HOST = 'localhost';
const DEFAULT_PORT = 3306;
/** mysql2's rejections when a full pool cannot even queue the request: both mean "exhausted". */
const QUEUE_LIMIT_REACHED = 'Queue limit reached.';
const NO_CONNECTIONS_AVAILABLE = 'No connections available.';

/**
 * mysql2 3.x, callback and promise pools and PoolCluster. The promise API (`mysql2/promise`) wraps
 * the callback pool and connection, so patching the callback layer gives one span per checkout
 * and one check per statement, whichever API the application uses. The files are hooked rather
 * than the package entry, because `require('mysql2/promise')` never loads `mysql2/index.js`; each
 * method is wrapped on the prototype that owns it, which moved into `lib/base/` in later 3.x.
 *
 * The `mysql2:pool:connect` TracingChannel (3.20+) is not used: its context carries no pool
 * object (so no holders, stats or pending count), and a subscriber cannot run the application's
 * callback in the caller's context; the patch is needed on every 3.x anyway.
 */
export const mysql2Adapter = defineAdapter(({ core, module, file }) => {
  const state = new Mysql2State();
  const probe = mysql2PoolProbe(state);
  const files = [
    file('mysql2/lib/pool.js', SUPPORTED_VERSIONS, (Pool: Mysql2Class<Mysql2Pool>, hook) => {
      hookWhereDefined(hook, Pool.prototype, 'getConnection', (original) => wrapGetConnection(original, core, state, probe));
      hookWhereDefined(hook, Pool.prototype, 'releaseConnection', (original) => wrapReleaseConnection(original, core, state));
      hookWhereDefined(hook, Pool.prototype, 'query', (original) => wrapLibraryCheckout(original, state));
      hookWhereDefined(hook, Pool.prototype, 'execute', (original) => wrapLibraryCheckout(original, state));
    }),
    file('mysql2/lib/pool_connection.js', SUPPORTED_VERSIONS, (PoolConnection: Mysql2Class<Mysql2PoolConnection>, hook) => {
      hookWhereDefined(hook, PoolConnection.prototype, 'release', (original) => wrapRelease(original, core, state));
      hookWhereDefined(hook, PoolConnection.prototype, 'destroy', (original) => wrapDestroy(original, core, state));
      hookWhereDefined(hook, PoolConnection.prototype, 'end', (original) => wrapEnd(original, core, state));
    }),
    file('mysql2/lib/connection.js', SUPPORTED_VERSIONS, (Connection: Mysql2Class<Mysql2Connection>, hook) => {
      hookWhereDefined(hook, Connection.prototype, 'query', (original) => wrapStatement(original, core));
      hookWhereDefined(hook, Connection.prototype, 'execute', (original) => wrapStatement(original, core));
    }),
    file('mysql2/lib/pool_cluster.js', SUPPORTED_VERSIONS, (PoolCluster: Mysql2PoolClusterClass, hook) => {
      hookWhereDefined(hook, PoolCluster.prototype, 'add', (original) => wrapClusterAdd(original, state));
      const namespace = namespacePrototype(PoolCluster);
      if (namespace === undefined) return;
      hookWhereDefined(hook, namespace, 'query', (original) => wrapLibraryCheckout(original, state));
      hookWhereDefined(hook, namespace, 'execute', (original) => wrapLibraryCheckout(original, state));
    }),
    file('mysql2/lib/promise/pool.js', SUPPORTED_VERSIONS, (PromisePool: Mysql2Class<Mysql2PromisePool>, hook) => {
      hook(PromisePool.prototype, 'getConnection', (original) => withPromiseCallSite(original, core));
    }),
  ];
  return [module('mysql2', SUPPORTED_VERSIONS, undefined, files)];
});

/**
 * `mysql2/promise`'s `getConnection` calls the callback pool from a promise executor, so the
 * checkout's stack would start with two library frames (executor, `new Promise`) and need the
 * long stack key. Captured here, the application is the first frame: one short capture.
 */
function withPromiseCallSite(original: Mysql2PromisePool['getConnection'], core: () => AdapterCore): Mysql2PromisePool['getConnection'] {
  return function getConnection(this: Mysql2PromisePool, ...args: unknown[]) {
    const leaseCore = core();
    return leaseCore.withCallSite(leaseCore.captureCallSite(getConnection), () => original.apply(this, args));
  };
}

/** What one instrumentation instance keeps about mysql2 while it runs (never per checkout). */
class Mysql2State {
  /**
   * Leases taken by mysql2's own `pool.query`/`pool.execute` (and the cluster's): mysql2 releases
   * them itself, from the statement's `end` event, which runs in the context of whichever request
   * opened the socket. That release is made on the caller's behalf, so it is checked in there.
   */
  readonly libraryReleasedLeases = new WeakSet<Lease>();
  /**
   * Our own wrapped callbacks: when a connection leaves the pool, mysql2 hands a queued callback
   * back to `getConnection`, and that must not start a second checkout.
   */
  readonly leasedCallbacks = new WeakSet<Function>();
  /** Pools of a PoolCluster, by the node id the application gave them: their pool name. */
  readonly clusterNodeIds = new WeakMap<object, string>();
  /** Set while mysql2's `pool.query`/`execute` run: their synchronous `getConnection` consumes it. */
  libraryCheckoutPending = false;
  /** Depth inside `PoolConnection#release`, which calls `pool.releaseConnection` itself. */
  releaseDepth = 0;
}

function mysql2PoolProbe(state: Mysql2State): PoolProbe<Mysql2Pool> {
  return {
    library: 'mysql2',
    describe: (pool) => describeMysql2Pool(pool, state.clusterNodeIds.get(pool)),
  pendingAhead(pool) {
    const limit = pool.config.connectionLimit;
    const full = pool._freeConnections.length === 0 && limit > 0 && pool._allConnections.length >= limit;
    return full ? pool._connectionQueue.length : undefined;
  },
  stats(pool) {
    const idle = pool._freeConnections.length;
    const limit = pool.config.connectionLimit;
    return {
      idle,
      used: pool._allConnections.length - idle,
      pending: pool._connectionQueue.length,
      max: limit > 0 ? limit : undefined,
    };
  },
  // mysql2 has no acquire timeout (a waiter waits until served or the pool ends), so no
  // isTimeout; exhaustion is the immediate rejection of a request that cannot queue.
  isExhausted: (error) => error instanceof Error && (error.message === QUEUE_LIMIT_REACHED || error.message === NO_CONNECTIONS_AVAILABLE),
  dbSystemOf: mysql2ServerDbSystem,
  };
}


/**
 * mysql2 does not export its PoolNamespace class; an empty cluster (no pools, no sockets, no
 * timers) hands one out.
 */
function namespacePrototype(PoolCluster: Mysql2PoolClusterClass): Mysql2PoolNamespace | undefined {
  try {
    return Object.getPrototypeOf(new PoolCluster().of()) as Mysql2PoolNamespace;
  } catch {
    return undefined;
  }
}

/**
 * The acquire point of every pool form: the promise pool, `pool.query`/`execute` and the cluster
 * all end up here, so each logical checkout is one span, on the pool that serves it.
 */
function wrapGetConnection(
  original: Mysql2Pool['getConnection'],
  core: () => AdapterCore,
  state: Mysql2State,
  probe: PoolProbe<Mysql2Pool>,
): Mysql2Pool['getConnection'] {
  return function getConnection(this: Mysql2Pool, callback: Mysql2GetConnectionCallback) {
    const releasedByLibrary = state.libraryCheckoutPending;
    state.libraryCheckoutPending = false;
    if (typeof callback !== 'function' || state.leasedCallbacks.has(callback)) return Reflect.apply(original, this, arguments) as void;
    const lease = core().checkout(this, probe, getConnection);
    if (lease === undefined) return Reflect.apply(original, this, arguments) as void;
    if (releasedByLibrary) state.libraryReleasedLeases.add(lease);
    // getConnection takes exactly one argument in every 3.x.
    const onConnection = leasedCallback(lease, callback);
    state.leasedCallbacks.add(onConnection);
    return original.call(this, onConnection);
  };
}

/** `pool.query`/`execute` and the cluster's: the checkout they make is released by mysql2 itself. */
function wrapLibraryCheckout<This>(original: Method<This, unknown[], unknown>, state: Mysql2State): Method<This, unknown[], unknown> {
  /**
   * A cluster statement with no matching node calls back synchronously, before any checkout: a
   * checkout the application makes in that callback is its own, not mysql2's.
   */
  const endingLibraryCheckout = (callback: Function): Function =>
    function statementCallback(this: unknown, ...args: unknown[]) {
      state.libraryCheckoutPending = false;
      return callback.apply(this, args);
    };
  return function checkoutForStatement(this: This) {
    const args = withCallbackInCallerContext(arguments, endingLibraryCheckout);
    state.libraryCheckoutPending = true;
    try {
      return Reflect.apply(original, this, args);
    } finally {
      state.libraryCheckoutPending = false;
    }
  };
}

/**
 * Statements on a leased connection: the lease's statement count and state, the foreign-context
 * check, and the callback bound to the context of the call. mysql2 runs statement callbacks from
 * the socket, in the context of the request that opened it; without the binding, `conn.release()`
 * in a query callback of a reused connection would look like a checkin from another trace. The
 * statement settles on the command's `end` event, which mysql2 emits after the callback or the
 * promise layer's answer, for results and errors alike.
 */
function wrapStatement(original: Mysql2Connection['query'], core: () => AdapterCore): Mysql2Connection['query'] {
  return function statement(this: Mysql2Connection) {
    const leases = core();
    if (leases.leaseOf(this) === undefined) return Reflect.apply(original, this, arguments);
    const lease = leases.statementIssued(this, statement, arguments[0]);
    const args = withCallbackInCallerContext(arguments);
    if (lease === undefined) return Reflect.apply(original, this, args);
    let command: unknown;
    try {
      command = Reflect.apply(original, this, args);
    } catch (error) {
      lease.statementSettled();
      throw error;
    }
    settleOnEnd(lease, command);
    return command;
  };
}

function settleOnEnd(lease: Lease, command: unknown): void {
  const once = (command as { once?: unknown } | null | undefined)?.once;
  if (typeof once === 'function') once.call(command, 'end', () => settleCommand(lease, command as Mysql2Command));
  else lease.statementSettled();
}

/**
 * What the command's answer says, read at its `end`: a command that produced no result was
 * answered with an error packet (failed); otherwise an OK packet as its last result carries the
 * server's status flags, whose in-transaction bit is the server's own word. A result set keeps
 * no flags in mysql2: the state is then told from the statement.
 */
function settleCommand(lease: Lease, command: Mysql2Command): void {
  const results = command._rows;
  if (!Array.isArray(results)) {
    lease.statementSettled();
    return;
  }
  const last: unknown = results[results.length - 1];
  if (last === undefined) lease.statementSettled(true);
  else lease.statementSettled(false, mysqlTransactionStatus((last as { serverStatus?: unknown } | null)?.serverStatus));
}

function wrapRelease(original: Mysql2PoolConnection['release'], core: () => AdapterCore, state: Mysql2State): Mysql2PoolConnection['release'] {
  return function release(this: Mysql2PoolConnection) {
    const leases = core();
    // A connection already out of the pool (lost, pool ended) is not reused: it counts as destroyed.
    if (leases.leaseOf(this) !== undefined) checkIn(leases, state, this, !isInOpenPool(this), release);
    state.releaseDepth++;
    try {
      return Reflect.apply(original, this, arguments) as void;
    } finally {
      state.releaseDepth--;
    }
  };
}

function wrapDestroy(original: Mysql2PoolConnection['destroy'], core: () => AdapterCore, state: Mysql2State): Mysql2PoolConnection['destroy'] {
  return function destroy(this: Mysql2PoolConnection) {
    discard(core(), state, this, destroy);
    return Reflect.apply(original, this, arguments) as void;
  };
}

/** With `gracefulEnd`, `conn.end()` takes the connection out of the pool; otherwise it calls release. */
function wrapEnd(original: Mysql2PoolConnection['end'], core: () => AdapterCore, state: Mysql2State): Mysql2PoolConnection['end'] {
  return function end(this: Mysql2PoolConnection) {
    if (this?.config?.gracefulEnd === true) discard(core(), state, this, end);
    return Reflect.apply(original, this, arguments) as ReturnType<Mysql2PoolConnection['end']>;
  };
}

/** `pool.releaseConnection(conn)` is public API, and also what `conn.release()` calls. */
function wrapReleaseConnection(original: Mysql2Pool['releaseConnection'], core: () => AdapterCore, state: Mysql2State): Mysql2Pool['releaseConnection'] {
  return function releaseConnection(this: Mysql2Pool, connection: Mysql2PoolConnection) {
    // Inside conn.release() the checkin happened already; a connection without a pool is one
    // mysql2 removed itself (destroyed, lost), which is not a checkin either.
    if (state.releaseDepth === 0 && isPooledConnection(connection)) checkIn(core(), state, connection, false, releaseConnection);
    return Reflect.apply(original, this, arguments) as void;
  };
}

/** Remembers the node id of each cluster pool: the pool's name on its spans and metrics. */
function wrapClusterAdd(original: Mysql2PoolCluster['add'], state: Mysql2State): Mysql2PoolCluster['add'] {
  return function add(this: Mysql2PoolCluster, id: unknown) {
    const result: unknown = Reflect.apply(original, this, arguments);
    if (typeof id === 'string') {
      const pool = this._nodes?.[id]?.pool;
      if (typeof pool === 'object' && pool !== null) state.clusterNodeIds.set(pool, id);
    }
    return result;
  };
}

/**
 * The connection is destroyed: a checkin of a held lease, or an invalid release when it was
 * destroyed before. After a release the pool owns the connection and destroys idle ones itself
 * (idle timeout, a failed reset), which cannot be told apart from the application destroying a
 * connection it released: not reported.
 */
function discard(core: AdapterCore, state: Mysql2State, connection: Mysql2PoolConnection, boundary: Function): void {
  const lease = core.leaseOf(connection);
  if (lease !== undefined && (lease.isHeld || lease.endedByDestroy)) checkIn(core, state, connection, true, boundary);
}

function checkIn(core: AdapterCore, state: Mysql2State, connection: Mysql2PoolConnection, destroyed: boolean, boundary: Function): void {
  const lease = core.leaseOf(connection);
  if (lease === undefined) return;
  if (!state.libraryReleasedLeases.has(lease)) {
    core.releaseConnection(connection, destroyed, boundary);
    return;
  }
  // mysql2's own release: in the caller's context; a second one (pool.execute destroys and then
  // releases on a read-only error) is mysql2's business, not an application mistake.
  if (lease.isHeld) lease.runInCallerContext(lease.checkin, lease, [destroyed, boundary]);
}

function isPooledConnection(connection: unknown): connection is Mysql2PoolConnection {
  return typeof connection === 'object' && connection !== null && (connection as Partial<Mysql2PoolConnection>)._pool != null;
}

function isInOpenPool(connection: Mysql2PoolConnection): boolean {
  const pool = connection._pool;
  return pool !== null && pool !== undefined && !pool._closed;
}

/**
 * The statement callback, if any, bound to the active context. mysql2 takes it from the second
 * argument when that is a function, else from the third (`query(sql, cb)`, `query(sql, values,
 * cb)`, `query(options, cb)`, same for execute). The promise form passes `arguments` on as it is.
 */
function withCallbackInCallerContext(args: IArguments, adapt?: (callback: Function) => Function): ArrayLike<unknown> {
  const index = typeof args[1] === 'function' ? 1 : typeof args[2] === 'function' ? 2 : -1;
  if (index === -1) return args;
  const copy: unknown[] = Array.prototype.slice.call(args);
  const callback = copy[index] as Function;
  copy[index] = context.bind(context.active(), adapt === undefined ? callback : adapt(callback));
  return copy;
}

/**
 * Server, port and database from the pool's connection settings (a URI is parsed by mysql2
 * itself); user and password are never read. `db.system.name` starts as `mysql`; a MariaDB
 * server says so only in its greeting, which the core reads from the pool's first granted
 * connection (`dbSystemOf`).
 */
export function describeMysql2Pool(pool: Mysql2Pool, clusterNodeId?: string): PoolDescription {
  const config = pool.config?.connectionConfig ?? {};
  const limit = pool.config?.connectionLimit ?? 0;
  const socketPath = config.socketPath !== undefined && config.socketPath !== '' ? config.socketPath : undefined;
  const port = Number(config.port);
  return {
    library: 'mysql2',
    dbSystem: DB_SYSTEM_NAME_VALUE_MYSQL,
    serverAddress: socketPath ?? (config.host !== undefined && config.host !== '' ? config.host : DEFAULT_HOST),
    serverPort: socketPath !== undefined ? undefined : Number.isFinite(port) && port > 0 ? port : DEFAULT_PORT,
    namespace: config.database !== undefined && config.database !== '' ? config.database : undefined,
    name: clusterNodeId,
    maxConnections: limit > 0 ? limit : undefined,
  };
}
