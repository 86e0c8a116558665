import { context } from '@opentelemetry/api';
import { InstrumentationNodeModuleDefinition, InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import { DB_SYSTEM_NAME_VALUE_MARIADB, DB_SYSTEM_NAME_VALUE_MYSQL } from '@opentelemetry/semantic-conventions';
import type { Lease } from '../lease';
import type { LeaseCore, PoolProbe } from '../lease-core';
import type { PoolDescription } from '../tracked-pool';
import { commonJsExports, type AdapterContext, type Patcher, type PoolAdapter } from './adapter';
import type {
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
export const mysql2Adapter: PoolAdapter = {
  library: 'mysql2',
  moduleDefinitions({ core, patcher }: AdapterContext) {
    const files = [
      fileHook<Mysql2Class<Mysql2Pool>>(
        'mysql2/lib/pool.js',
        (Pool) => patchPool(Pool.prototype, core, patcher),
        (Pool) => unpatchPool(Pool.prototype, patcher),
      ),
      fileHook<Mysql2Class<Mysql2PoolConnection>>(
        'mysql2/lib/pool_connection.js',
        (PoolConnection) => patchPoolConnection(PoolConnection.prototype, core, patcher),
        (PoolConnection) => unpatchPoolConnection(PoolConnection.prototype, patcher),
      ),
      fileHook<Mysql2Class<Mysql2Connection>>(
        'mysql2/lib/connection.js',
        (Connection) => patchConnection(Connection.prototype, core, patcher),
        (Connection) => unpatchConnection(Connection.prototype, patcher),
      ),
      fileHook<Mysql2PoolClusterClass>(
        'mysql2/lib/pool_cluster.js',
        (PoolCluster) => patchPoolCluster(PoolCluster, patcher),
        (PoolCluster) => unpatchPoolCluster(PoolCluster, patcher),
      ),
      fileHook<Mysql2Class<Mysql2PromisePool>>(
        'mysql2/lib/promise/pool.js',
        (PromisePool) => patcher.wrap(PromisePool.prototype, 'getConnection', (original) => withPromiseCallSite(original, core)),
        (PromisePool) => patcher.unwrap(PromisePool.prototype, 'getConnection'),
      ),
    ];
    return [new InstrumentationNodeModuleDefinition('mysql2', SUPPORTED_VERSIONS, undefined, undefined, files)];
  },
};

/** A hook on one file of mysql2, whose exports are the class to patch. */
function fileHook<Exports>(name: string, patch: (exports: Exports) => void, unpatch: (exports: Exports) => void) {
  return new InstrumentationNodeModuleFile(
    name,
    SUPPORTED_VERSIONS,
    (moduleExports: Exports) => {
      patch(commonJsExports(moduleExports));
      return moduleExports;
    },
    (moduleExports?: Exports) => {
      if (moduleExports !== undefined) unpatch(commonJsExports(moduleExports));
    },
  );
}

/**
 * `mysql2/promise`'s `getConnection` calls the callback pool from a promise executor, so the
 * checkout's stack would start with two library frames (executor, `new Promise`) and need the
 * long stack key. Captured here, the application is the first frame: one short capture.
 */
function withPromiseCallSite(original: Mysql2PromisePool['getConnection'], core: () => LeaseCore): Mysql2PromisePool['getConnection'] {
  return function getConnection(this: Mysql2PromisePool, ...args: unknown[]) {
    const leaseCore = core();
    return leaseCore.withCallSite(leaseCore.captureCallSite(getConnection), () => original.apply(this, args));
  };
}

// Adapter state shared by the wrappers. All of it is per process, not per checkout.

/**
 * Leases taken by mysql2's own `pool.query`/`pool.execute` (and the cluster's): mysql2 releases
 * them itself, from the statement's `end` event, which runs in the context of whichever request
 * opened the socket. That release is made on the caller's behalf, so it is checked in there.
 */
const libraryReleasedLeases = new WeakSet<Lease>();
/**
 * Our own wrapped callbacks: when a connection leaves the pool, mysql2 hands a queued callback
 * back to `getConnection`, and that must not start a second checkout.
 */
const leasedCallbacks = new WeakSet<Function>();
/** Pools of a PoolCluster, by the node id the application gave them: their pool name. */
const clusterNodeIds = new WeakMap<object, string>();
/** Set while mysql2's `pool.query`/`execute` run: their synchronous `getConnection` consumes it. */
let libraryCheckoutPending = false;
/** Depth inside `PoolConnection#release`, which calls `pool.releaseConnection` itself. */
let releaseDepth = 0;

const mysql2PoolProbe: PoolProbe<Mysql2Pool> = {
  describe: describeMysql2Pool,
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
  dbSystemOf: (connection) => serverDbSystem(connection as Mysql2PoolConnection),
};

/** `mariadb` when the server's greeting says so (`10.11.6-MariaDB-…`), else `mysql`. */
function serverDbSystem(connection: Mysql2PoolConnection): string | undefined {
  const version = connection._handshakePacket?.serverVersion;
  if (typeof version !== 'string') return undefined;
  return /mariadb/i.test(version) ? DB_SYSTEM_NAME_VALUE_MARIADB : DB_SYSTEM_NAME_VALUE_MYSQL;
}

function patchPool(prototype: Mysql2Pool, core: () => LeaseCore, patcher: Patcher): void {
  wrapOwned(patcher, prototype, 'getConnection', (original) => wrapGetConnection(original, core));
  wrapOwned(patcher, prototype, 'releaseConnection', (original) => wrapReleaseConnection(original, core));
  wrapOwned(patcher, prototype, 'query', wrapLibraryCheckout);
  wrapOwned(patcher, prototype, 'execute', wrapLibraryCheckout);
}

function unpatchPool(prototype: Mysql2Pool, patcher: Patcher): void {
  for (const name of ['getConnection', 'releaseConnection', 'query', 'execute'] as const) unwrapOwned(patcher, prototype, name);
}

function patchPoolConnection(prototype: Mysql2PoolConnection, core: () => LeaseCore, patcher: Patcher): void {
  wrapOwned(patcher, prototype, 'release', (original) => wrapRelease(original, core));
  wrapOwned(patcher, prototype, 'destroy', (original) => wrapDestroy(original, core));
  wrapOwned(patcher, prototype, 'end', (original) => wrapEnd(original, core));
}

function unpatchPoolConnection(prototype: Mysql2PoolConnection, patcher: Patcher): void {
  for (const name of ['release', 'destroy', 'end'] as const) unwrapOwned(patcher, prototype, name);
}

function patchConnection(prototype: Mysql2Connection, core: () => LeaseCore, patcher: Patcher): void {
  wrapOwned(patcher, prototype, 'query', (original) => wrapStatement(original, core));
  wrapOwned(patcher, prototype, 'execute', (original) => wrapStatement(original, core));
}

function unpatchConnection(prototype: Mysql2Connection, patcher: Patcher): void {
  for (const name of ['query', 'execute'] as const) unwrapOwned(patcher, prototype, name);
}

function patchPoolCluster(PoolCluster: Mysql2PoolClusterClass, patcher: Patcher): void {
  wrapOwned(patcher, PoolCluster.prototype, 'add', wrapClusterAdd);
  const namespace = namespacePrototype(PoolCluster);
  if (namespace === undefined) return;
  wrapOwned(patcher, namespace, 'query', wrapLibraryCheckout);
  wrapOwned(patcher, namespace, 'execute', wrapLibraryCheckout);
}

function unpatchPoolCluster(PoolCluster: Mysql2PoolClusterClass, patcher: Patcher): void {
  unwrapOwned(patcher, PoolCluster.prototype, 'add');
  const namespace = namespacePrototype(PoolCluster);
  if (namespace === undefined) return;
  unwrapOwned(patcher, namespace, 'query');
  unwrapOwned(patcher, namespace, 'execute');
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
function wrapGetConnection(original: Mysql2Pool['getConnection'], core: () => LeaseCore): Mysql2Pool['getConnection'] {
  return function getConnection(this: Mysql2Pool, callback: Mysql2GetConnectionCallback) {
    const releasedByLibrary = libraryCheckoutPending;
    libraryCheckoutPending = false;
    const args = arguments as unknown as [Mysql2GetConnectionCallback];
    if (typeof callback !== 'function' || leasedCallbacks.has(callback)) return original.apply(this, args);
    const lease = core().checkout(this, mysql2PoolProbe, getConnection);
    if (lease === undefined) return original.apply(this, args);
    if (releasedByLibrary) libraryReleasedLeases.add(lease);
    // getConnection takes exactly one argument in every 3.x.
    return original.call(this, leasedCallback(lease, callback));
  };
}

/** The application's callback, told about the grant first and run in the caller's context. */
function leasedCallback(lease: Lease, callback: Mysql2GetConnectionCallback): Mysql2GetConnectionCallback {
  const onConnection = function onConnection(this: unknown, error: Error | null, connection?: Mysql2PoolConnection) {
    if (error) lease.failed(error);
    else if (connection !== undefined && connection !== null) lease.granted(connection);
    return lease.runInCallerContext(callback, this, Array.prototype.slice.call(arguments) as Parameters<Mysql2GetConnectionCallback>);
  };
  leasedCallbacks.add(onConnection);
  return onConnection;
}

/** `pool.query`/`execute` and the cluster's: the checkout they make is released by mysql2 itself. */
function wrapLibraryCheckout(original: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  return function checkoutForStatement(this: unknown) {
    const args = withCallbackInCallerContext(arguments, endingLibraryCheckout);
    libraryCheckoutPending = true;
    try {
      return original.apply(this, args);
    } finally {
      libraryCheckoutPending = false;
    }
  };
}

/**
 * Statements on a leased connection: the foreign-context check, and the callback bound to the
 * context of the call. mysql2 runs statement callbacks from the socket, in the context of the
 * request that opened it; without the binding, `conn.release()` in a query callback of a reused
 * connection would look like a checkin from another trace.
 */
function wrapStatement(original: Mysql2Connection['query'], core: () => LeaseCore): Mysql2Connection['query'] {
  return function statement(this: Mysql2Connection) {
    const leases = core();
    if (leases.leaseOf(this) === undefined) return original.apply(this, arguments as unknown as unknown[]);
    leases.statementIssued(this, statement);
    return original.apply(this, withCallbackInCallerContext(arguments));
  };
}

function wrapRelease(original: Mysql2PoolConnection['release'], core: () => LeaseCore): Mysql2PoolConnection['release'] {
  return function release(this: Mysql2PoolConnection) {
    const leases = core();
    // A connection already out of the pool (lost, pool ended) is not reused: it counts as destroyed.
    if (leases.leaseOf(this) !== undefined) checkIn(leases, this, !isInOpenPool(this), release);
    releaseDepth++;
    try {
      return original.apply(this, arguments as unknown as []);
    } finally {
      releaseDepth--;
    }
  };
}

function wrapDestroy(original: Mysql2PoolConnection['destroy'], core: () => LeaseCore): Mysql2PoolConnection['destroy'] {
  return function destroy(this: Mysql2PoolConnection) {
    discard(core(), this, destroy);
    return original.apply(this, arguments as unknown as []);
  };
}

/** With `gracefulEnd`, `conn.end()` takes the connection out of the pool; otherwise it calls release. */
function wrapEnd(original: Mysql2PoolConnection['end'], core: () => LeaseCore): Mysql2PoolConnection['end'] {
  return function end(this: Mysql2PoolConnection) {
    if (this?.config?.gracefulEnd === true) discard(core(), this, end);
    return original.apply(this, arguments as unknown as unknown[]);
  };
}

/** `pool.releaseConnection(conn)` is public API, and also what `conn.release()` calls. */
function wrapReleaseConnection(original: Mysql2Pool['releaseConnection'], core: () => LeaseCore): Mysql2Pool['releaseConnection'] {
  return function releaseConnection(this: Mysql2Pool, connection: Mysql2PoolConnection) {
    // Inside conn.release() the checkin happened already; a connection without a pool is one
    // mysql2 removed itself (destroyed, lost), which is not a checkin either.
    if (releaseDepth === 0 && isPooledConnection(connection)) checkIn(core(), connection, false, releaseConnection);
    return original.apply(this, arguments as unknown as [Mysql2PoolConnection]);
  };
}

/** Remembers the node id of each cluster pool: the pool's name on its spans and metrics. */
function wrapClusterAdd(original: Mysql2PoolCluster['add']): Mysql2PoolCluster['add'] {
  return function add(this: Mysql2PoolCluster, id: unknown) {
    const result = original.apply(this, arguments as unknown as unknown[]);
    if (typeof id === 'string') {
      const pool = this._nodes?.[id]?.pool;
      if (typeof pool === 'object' && pool !== null) clusterNodeIds.set(pool, id);
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
function discard(core: LeaseCore, connection: Mysql2PoolConnection, boundary: Function): void {
  const lease = core.leaseOf(connection);
  if (lease !== undefined && (lease.isHeld || lease.endedByDestroy)) checkIn(core, connection, true, boundary);
}

function checkIn(core: LeaseCore, connection: Mysql2PoolConnection, destroyed: boolean, boundary: Function): void {
  const lease = core.leaseOf(connection);
  if (lease === undefined) return;
  if (!libraryReleasedLeases.has(lease)) {
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
function withCallbackInCallerContext(args: IArguments, adapt?: (callback: Function) => Function): unknown[] {
  const index = typeof args[1] === 'function' ? 1 : typeof args[2] === 'function' ? 2 : -1;
  if (index === -1) return args as unknown as unknown[];
  const copy: unknown[] = Array.prototype.slice.call(args);
  const callback = copy[index] as Function;
  copy[index] = context.bind(context.active(), adapt === undefined ? callback : adapt(callback));
  return copy;
}

/**
 * A cluster statement with no matching node calls back synchronously, before any checkout: a
 * checkout the application makes in that callback is its own, not mysql2's.
 */
function endingLibraryCheckout(callback: Function): Function {
  return function statementCallback(this: unknown) {
    libraryCheckoutPending = false;
    return callback.apply(this, arguments);
  };
}

/** The object in the prototype chain that owns `name`: mysql2 moved methods into base classes. */
function ownerOf<T extends object>(prototype: T, name: keyof T): T | undefined {
  for (let current: object | null = prototype; current !== null; current = Object.getPrototypeOf(current) as object | null) {
    if (Object.prototype.hasOwnProperty.call(current, name)) return current as T;
  }
  return undefined;
}

function wrapOwned<T extends object, Name extends keyof T>(
  patcher: Patcher,
  prototype: T,
  name: Name,
  wrapper: (original: T[Name]) => T[Name],
): void {
  const owner = ownerOf(prototype, name);
  if (owner !== undefined && typeof owner[name] === 'function') patcher.wrap(owner, name, wrapper);
}

function unwrapOwned<T extends object>(patcher: Patcher, prototype: T, name: keyof T): void {
  const owner = ownerOf(prototype, name);
  if (owner !== undefined) patcher.unwrap(owner, name);
}

/**
 * Server, port and database from the pool's connection settings (a URI is parsed by mysql2
 * itself); user and password are never read. `db.system.name` starts as `mysql`; a MariaDB
 * server says so only in its greeting, which the core reads from the pool's first granted
 * connection (`dbSystemOf`).
 */
export function describeMysql2Pool(pool: Mysql2Pool): PoolDescription {
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
    name: clusterNodeIds.get(pool),
    maxConnections: limit > 0 ? limit : undefined,
  };
}
