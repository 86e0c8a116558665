// Why this adapter is long (~420 lines, the kit's adapters are ~70-180): the mariadb connector
// keeps its pool internals private and reaches them three ways — the promise entry, the callback
// entry (a separate file, ES module or CommonJS by version) and the cluster — and its raw
// connection classes are only reachable through a granted connection, so they are patched at the
// first grant. Release has four doors (`release`, `_handleRelease`, `_endLeak`, a connection lost
// to the server), each needing its own reading. Splitting would only scatter one library's rules.
import { EventEmitter } from 'node:events';
import { context, diag } from '@opentelemetry/api';
import { DB_SYSTEM_NAME_VALUE_MARIADB } from '@opentelemetry/semantic-conventions';
import type { Patcher } from './kit/adapter';
import { defineAdapter, leasedCallback, type AdapterCore, type MethodHook } from './kit/kit';
import { mysqlTransactionStatus } from './kit/server-status';
import type {
  MariaDbCallbackGetConnection,
  MariaDbCommandParam,
  MariaDbConnection,
  MariaDbConnectionCallbackClass,
  MariaDbEntryModule,
  MariaDbFrontEndPool,
  MariaDbInternalPool,
  MariaDbSettle,
  MariaDbStatementMethodName,
} from './mariadb-types';
import type { Lease, PoolDescription, PoolProbe } from '../core';

/** 3.4.1 gave the connector's pool the callback-based internals this adapter hooks. */
const SUPPORTED_VERSIONS = ['>=3.4.1 <4'];
/**
 * The callback entry point: the CommonJS bundle of 3.5.3+, and `callback.js` (ES module from
 * 3.5.0, CommonJS in 3.4.x). `require('mariadb')` / `import 'mariadb'` is the module itself.
 */
const CALLBACK_ENTRY_FILES = ['mariadb/dist/callback.cjs', 'mariadb/callback.js'];
const DEFAULT_CONNECTION_LIMIT = 10;
const DEFAULT_HOST = 'localhost';
const DEFAULT_PORT = 3306;
const ACQUIRE_TIMEOUT_CODE = 'ER_GET_CONNECTION_TIMEOUT';
/** A pool that opens nothing: no idle minimum, and nobody asks it for a connection. */
const PROBE_POOL_OPTIONS = { connectionLimit: 1, minimumIdle: 0 } as const;
const POOL_METHODS = ['getConnection', '_handleRelease', 'release', '_endLeak'] as const;
const POOL_READERS = ['activeConnections', 'idleConnections', 'taskQueueSize', 'totalConnections'] as const;
/** Raw connection methods the front-ends send statements through (commit/rollback included). */
const STATEMENT_METHODS: readonly MariaDbStatementMethodName[] = ['query', 'prepareExecute', 'batch', 'changeTransaction'];

/**
 * MariaDB Connector/Node.js 3.x. Both front-ends (`PoolPromise`, `PoolCallback`) and every pool of
 * a cluster keep the connector's own `Pool` in a private field; its `getConnection` is the one
 * acquire point, so each logical checkout is one lease whatever API asked for it. The CommonJS
 * build is a minified bundle that exports none of its classes, so the adapter finds that `Pool`
 * (and the front-end class) once per entry point by building a pool that opens nothing.
 *
 * Release points, all on the internal pool: `_handleRelease` (the app's `release()`, `end()`,
 * `close()`), `release` (what `pool.query`/`execute`/`batch` call after their statement) and
 * `_endLeak` (a held connection destroyed, or dropped by the pool after its socket died). The
 * raw connection's statement methods are the statement points, and the callback front-end's
 * `_QUERY_CMD` for `conn.query(sql, cb)`, which bypasses them.
 */
export const mariadbAdapter = defineAdapter(({ core, patcher, module, file }) => {
  const patches = new ConnectorPatches(core, patcher);
  const callbackEntries = CALLBACK_ENTRY_FILES.map((name) =>
    file(name, SUPPORTED_VERSIONS, (entry: MariaDbEntryModule, hook) => patches.hookEntry(entry, 'callback', hook)),
  );
  return [module('mariadb', SUPPORTED_VERSIONS, (entry: MariaDbEntryModule, hook) => patches.hookEntry(entry, 'promise', hook), callbackEntries)];
});

type Flavour = 'promise' | 'callback';
type PoolMethod<Name extends keyof MariaDbInternalPool> = MariaDbInternalPool[Name];
type OnGrant = (connection: MariaDbConnection) => void;

/** The classes an entry point hides behind `createPool`: the connector's pool and the front-end. */
interface ConnectorClasses {
  readonly pool: MariaDbInternalPool;
  readonly frontEnd: MariaDbFrontEndPool;
}

const mariadbProbe: PoolProbe<MariaDbInternalPool> = {
  library: 'mariadb',
  describe: describeMariaDbPool,
  pendingAhead(pool) {
    if (pool.idleConnections() > 0) return undefined;
    const queued = pool.taskQueueSize();
    return queued > 0 || pool.totalConnections() >= connectionLimitOf(pool) ? queued : undefined;
  },
  stats: (pool) => ({
    idle: pool.idleConnections(),
    used: pool.activeConnections(),
    pending: pool.taskQueueSize(),
    max: connectionLimitOf(pool),
  }),
  isTimeout: isAcquireTimeout,
  // The same error code with a `cause` means no connection could be created (server down):
  // nobody holds the pool, so naming holders would point at the wrong problem.
  isExhausted: (error) => isAcquireTimeout(error) && (error as { cause?: unknown }).cause === undefined,
};

/**
 * Everything patched for one instrumentation: the classes found per entry point, and those found
 * later on the first objects the connector hands out (raw connections, `ConnectionCallback`),
 * which are wrapped again on every enable and unwrapped on every disable with the rest.
 */
class ConnectorPatches {
  /** Per entry point; null = looked, not recognised (reported once). */
  private readonly classesByEntry = new WeakMap<object, ConnectorClasses | null>();
  private readonly connectionPrototypes = new Set<MariaDbConnection>();
  private readonly connectionCallbackClasses = new Set<MariaDbConnectionCallbackClass>();
  /**
   * Connections whose lease ended because the pool dropped them (their socket died). The owner's
   * later `release()` of such a connection is what it should do, not an invalid release.
   */
  readonly lostConnections = new WeakSet<object>();

  constructor(
    private readonly core: () => AdapterCore,
    private readonly patcher: Patcher,
  ) {}

  /** Wraps (or, on unpatch, unwraps) everything of one entry point, and the classes found since. */
  hookEntry(entry: MariaDbEntryModule, flavour: Flavour, hook: MethodHook): void {
    const classes = this.classesOf(entry);
    if (classes === undefined) return;
    const { core } = this;
    const pool = classes.pool;
    const onGrant = (connection: MariaDbConnection) => this.patchConnectionClass(connection);
    hook(pool, 'getConnection', (original) => wrapGetConnection(original, core, onGrant));
    hook(pool, '_handleRelease', (original) => wrapHandleRelease(original, core, this.lostConnections));
    hook(pool, 'release', (original) => wrapLibraryRelease(original, core));
    hook(pool, '_endLeak', (original) => wrapEndLeak(original, core, this.lostConnections));
    if (flavour === 'callback') {
      const frontEnd = classes.frontEnd as { getConnection: MariaDbCallbackGetConnection };
      hook(frontEnd, 'getConnection', (original) => this.wrapCallbackGetConnection(original));
    }
    for (const prototype of this.connectionPrototypes) {
      for (const name of STATEMENT_METHODS) hook(prototype, name, (original) => wrapStatement(original, core));
    }
    for (const connectionClass of this.connectionCallbackClasses) {
      hook(connectionClass, '_QUERY_CMD', (original) => wrapQueryCommand(original, core));
    }
  }

  private classesOf(entry: MariaDbEntryModule): ConnectorClasses | undefined {
    let classes = this.classesByEntry.get(entry);
    if (classes === undefined) {
      classes = findConnectorClasses(entry) ?? null;
      this.classesByEntry.set(entry, classes);
      if (classes === null) diag.warn('pool-leak: mariadb pool internals not recognised; this mariadb is not instrumented');
    }
    return classes ?? undefined;
  }

  /** The raw connection class is only reachable through a connection: patched at the first grant. */
  private patchConnectionClass(connection: MariaDbConnection): void {
    try {
      const prototype = Object.getPrototypeOf(connection) as MariaDbConnection | null;
      if (prototype === null || this.connectionPrototypes.has(prototype)) return;
      this.connectionPrototypes.add(prototype);
      for (const name of STATEMENT_METHODS) {
        if (typeof prototype[name] === 'function' && !this.patcher.isPatched(prototype, name)) {
          this.patcher.wrap(prototype, name, (original) => wrapStatement(original, this.core));
        }
      }
    } catch (error) {
      this.core().reportError('mariadb.patchConnectionClass', error);
    }
  }

  /** `conn.query(sql, cb)` of the callback API goes through `ConnectionCallback._QUERY_CMD`. */
  private patchConnectionCallbackClass(connection: unknown): void {
    const connectionClass = (connection as { constructor?: MariaDbConnectionCallbackClass }).constructor;
    if (connectionClass === undefined || this.connectionCallbackClasses.has(connectionClass)) return;
    this.connectionCallbackClasses.add(connectionClass);
    if (typeof connectionClass._QUERY_CMD !== 'function' || this.patcher.isPatched(connectionClass, '_QUERY_CMD')) return;
    try {
      this.patcher.wrap(connectionClass, '_QUERY_CMD', (original) => wrapQueryCommand(original, this.core));
    } catch (error) {
      this.core().reportError('mariadb.patchConnectionCallbackClass', error);
    }
  }

  /**
   * Only to find `ConnectionCallback`, which the callback front-end creates per checkout: until
   * the first connection is seen, the application's callback is wrapped; after, untouched.
   */
  private wrapCallbackGetConnection(original: MariaDbCallbackGetConnection): MariaDbCallbackGetConnection {
    const patches = this;
    let classFound = false;
    return function getConnection(this: MariaDbFrontEndPool, callback?: unknown) {
      if (classFound || typeof callback !== 'function') return Reflect.apply(original, this, arguments);
      return original.call(this, function onConnection(this: unknown, error: unknown, connection: unknown) {
        if (!error && connection !== undefined && connection !== null) {
          classFound = true;
          patches.patchConnectionCallbackClass(connection);
        }
        return Reflect.apply(callback, this, arguments);
      });
    };
  }
}

/**
 * The one acquire point. The application's callback (or the front-end's, which settles the
 * application's promise) runs in the caller's context: queued requests are answered from
 * whichever context released a connection.
 */
function wrapGetConnection(original: PoolMethod<'getConnection'>, core: () => AdapterCore, onGrant: OnGrant): PoolMethod<'getConnection'> {
  const grant = (lease: Lease, connection: MariaDbConnection) => {
    onGrant(connection);
    lease.granted(connection);
  };
  return function getConnection(this: MariaDbInternalPool, cmdParam, callback) {
    const done = typeof cmdParam === 'function' ? cmdParam : callback;
    if (typeof done !== 'function') return Reflect.apply(original, this, arguments) as void;
    const lease = core().checkout(this, mariadbProbe, getConnection);
    if (lease === undefined) return Reflect.apply(original, this, arguments) as void;
    const leased = leasedCallback(lease, done, grant);
    try {
      if (typeof cmdParam === 'function') return original.call(this, leased);
      bindCommandCallback(cmdParam);
      return original.call(this, cmdParam, leased);
    } catch (error) {
      lease.failed(error);
      throw error;
    }
  };
}

/** The application's `release()`, `end()` or `close()` of a pooled connection. */
function wrapHandleRelease(original: PoolMethod<'_handleRelease'>, core: () => AdapterCore, lostConnections: WeakSet<object>): PoolMethod<'_handleRelease'> {
  return function _handleRelease(this: MariaDbInternalPool, connection) {
    if (!lostConnections.delete(connection)) {
      core().releaseConnection(connection, releaseDestroys(this, connection), _handleRelease);
    }
    return Reflect.apply(original, this, arguments) as ReturnType<typeof original>;
  };
}

/**
 * The library's own release after `pool.query`/`execute`/`batch`. It runs from the statement's
 * callback, i.e. in the socket's context; the library decides when, so it is checked in within
 * the owner's context and never reported as a misplaced checkin.
 */
function wrapLibraryRelease(original: PoolMethod<'release'>, core: () => AdapterCore): PoolMethod<'release'> {
  return function release(this: MariaDbInternalPool, connection) {
    const lease = core().leaseOf(connection);
    if (lease !== undefined && lease.isHeld) {
      lease.runInCallerContext(lease.checkin, lease, [releaseDestroys(this, connection), release]);
    }
    return Reflect.apply(original, this, arguments) as ReturnType<typeof original>;
  };
}

/** A held connection leaves the pool's books without a release: destroyed, or its socket died. */
function wrapEndLeak(original: PoolMethod<'_endLeak'>, core: () => AdapterCore, lostConnections: WeakSet<object>): PoolMethod<'_endLeak'> {
  return function _endLeak(this: MariaDbInternalPool, connection) {
    const lease = core().leaseOf(connection);
    if (lease !== undefined && lease.isHeld) {
      if (isValidConnection(connection)) {
        // destroy(): by the application, or pool.end() closing what is still held.
        lease.checkin(true, _endLeak);
      } else {
        // The socket died (server KILL, network). Nobody checked in, so it is classified in the
        // owner's context, and the owner's later release() of the dead connection is accepted.
        lostConnections.add(connection);
        lease.runInCallerContext(lease.checkin, lease, [true, _endLeak]);
      }
    }
    return Reflect.apply(original, this, arguments) as ReturnType<typeof original>;
  };
}

type StatementMethod = MariaDbConnection[MariaDbStatementMethodName];
type QueryCommand = MariaDbConnectionCallbackClass['_QUERY_CMD'];

/**
 * Statement point of both front-ends (promise `query`/`execute`/`batch`/`commit`/`rollback`,
 * callback `execute`/`batch`/`commit`/`rollback`, and the pool's own `query`/`execute`/`batch`).
 * On a leased connection the settle functions are bound to the caller's context: the connector
 * calls them from the socket's context, where a `conn.release()` in a callback would look like
 * a checkin from another trace. One lookup serves both the foreign-context check and the binding.
 */
function wrapStatement(original: StatementMethod, core: () => AdapterCore): StatementMethod {
  return function statement(this: MariaDbConnection, cmdParam, resolve, reject) {
    const lease = core().leaseOf(this);
    if (lease === undefined || !lease.isHeld) return Reflect.apply(original, this, arguments) as ReturnType<StatementMethod>;
    if (!lease.statementIssued(statement, cmdParam)) return Reflect.apply(original, this, arguments) as ReturnType<StatementMethod>;
    const active = context.active();
    const settle = settleOnce(lease, this);
    return original.call(this, cmdParam, context.bind(active, settling(settle, resolve, false)), context.bind(active, settling(settle, reject, true)));
  };
}

/** Callback API `conn.query(sql, cb)` (and the callback pool's own query). */
function wrapQueryCommand(original: QueryCommand, core: () => AdapterCore): QueryCommand {
  return function _QUERY_CMD(this: unknown, connection, cmdParam) {
    const lease = core().leaseOf(connection);
    if (lease === undefined || !lease.statementIssued(_QUERY_CMD, cmdParam)) {
      return Reflect.apply(original, this, arguments) as ReturnType<QueryCommand>;
    }
    const callback = cmdParam?.callback;
    if (typeof callback === 'function') {
      cmdParam.callback = settling(settleOnce(lease, connection), callback as MariaDbSettle);
      bindCommandCallback(cmdParam);
      return Reflect.apply(original, this, arguments) as ReturnType<QueryCommand>;
    }
    // No callback: a stream read through events; the command's `end` comes after its last row.
    const command: unknown = Reflect.apply(original, this, arguments);
    const once = (command as { once?: unknown } | null | undefined)?.once;
    if (typeof once === 'function') once.call(command, 'end', lease.settler);
    else lease.statementSettled();
    return command;
  };
}

/**
 * Settles the statement the first time either of its answers is called. An answer that is no
 * error carries the server's transaction status: the connector has just read it from the OK or
 * EOF packet into `info.status`. After an error the connector sets the in-transaction flag
 * itself (so that it never skips a needed ROLLBACK): that is no word from the server, and is
 * not read.
 */
function settleOnce(lease: Lease, connection: MariaDbConnection): (failed: boolean) => void {
  let settled = false;
  return (failed) => {
    if (settled) return;
    settled = true;
    lease.statementSettled(failed, failed ? undefined : mysqlTransactionStatus(connection.info?.status));
  };
}

/**
 * The connector's answer (resolve, reject or the callback), after the lease notes the statement
 * settled. `failed`: this is the reject; undefined for a Node-style callback, told by its error.
 */
function settling(settle: (failed: boolean) => void, answer: MariaDbSettle, failed?: boolean): MariaDbSettle {
  if (typeof answer !== 'function') return answer;
  return function settled(this: unknown, error?: unknown) {
    settle(failed ?? (error !== null && error !== undefined));
    return Reflect.apply(answer, this, arguments) as void;
  };
}

/**
 * The callback front-ends carry the application's callback in the command parameter object the
 * connector builds per call (never the application's own object), and call it from the socket's
 * context; bound here, it runs in the context of the call.
 */
function bindCommandCallback(cmdParam: MariaDbCommandParam | null | undefined): void {
  if (cmdParam === null || typeof cmdParam !== 'object') return;
  const callback = cmdParam.callback;
  if (typeof callback === 'function') cmdParam.callback = context.bind(context.active(), callback);
}

/** What the connector itself checks before deciding to destroy a returned connection. */
function releaseDestroys(pool: MariaDbInternalPool, connection: MariaDbConnection): boolean {
  return pool.closed === true || !isValidConnection(connection);
}

function isValidConnection(connection: MariaDbConnection): boolean {
  try {
    return connection.isValid();
  } catch {
    return false;
  }
}

function isAcquireTimeout(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === ACQUIRE_TIMEOUT_CODE;
}

function connectionLimitOf(pool: MariaDbInternalPool): number {
  return pool.opts?.connectionLimit ?? DEFAULT_CONNECTION_LIMIT;
}

/** Server, port and database as the connector resolved them (a connection string included). */
export function describeMariaDbPool(pool: MariaDbInternalPool): PoolDescription {
  const connection = pool.opts?.connOptions ?? {};
  const socketPath = nonEmpty(connection.socketPath);
  const port = connection.port ?? DEFAULT_PORT;
  return {
    library: 'mariadb',
    dbSystem: DB_SYSTEM_NAME_VALUE_MARIADB,
    serverAddress: socketPath ?? nonEmpty(connection.host) ?? DEFAULT_HOST,
    serverPort: socketPath === undefined && Number.isFinite(port) ? port : undefined,
    namespace: nonEmpty(connection.database),
    maxConnections: connectionLimitOf(pool),
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

type EmitterInit = (this: object, ...args: unknown[]) => unknown;

/**
 * Builds one pool that opens nothing and ends it at once, noting every EventEmitter constructed
 * meanwhile: the connector's `Pool` is one of them. `EventEmitter.init` is swapped back before
 * `createPool` returns, and nothing else runs in between (the call is synchronous).
 */
function findConnectorClasses(entry: MariaDbEntryModule): ConnectorClasses | undefined {
  const emitters = EventEmitter as unknown as { init?: EmitterInit };
  const init = emitters.init;
  const createPool = entry.createPool;
  if (typeof init !== 'function' || typeof createPool !== 'function') return undefined;
  const constructed: object[] = [];
  let frontEnd: unknown;
  try {
    emitters.init = function noteEmitter(this: object) {
      constructed.push(this);
      return Reflect.apply(init, this, arguments);
    };
    frontEnd = createPool.call(entry, { ...PROBE_POOL_OPTIONS });
  } catch (error) {
    diag.debug('pool-leak: mariadb probe pool could not be built', error);
    return undefined;
  } finally {
    emitters.init = init;
  }
  endQuietly(frontEnd);
  const pool = constructed.find((object) => object !== frontEnd && isInternalPool(object));
  if (pool === undefined || typeof (frontEnd as MariaDbFrontEndPool | undefined)?.getConnection !== 'function') return undefined;
  const prototypeOf = Object.getPrototypeOf as (object: unknown) => never;
  return { pool: prototypeOf(pool), frontEnd: prototypeOf(frontEnd) };
}

function isInternalPool(candidate: object): boolean {
  const methods = candidate as unknown as Record<string, unknown>;
  return [...POOL_METHODS, ...POOL_READERS].every((name) => typeof methods[name] === 'function');
}

function endQuietly(pool: unknown): void {
  try {
    const ended = (pool as MariaDbFrontEndPool | undefined)?.end?.();
    if (ended instanceof Promise) ended.catch(() => undefined);
  } catch {
    // A probe that cannot end holds nothing: it never opened a connection.
  }
}
