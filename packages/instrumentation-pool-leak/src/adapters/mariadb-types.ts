// The parts of MariaDB Connector/Node.js 3.x (3.4.1 and later) this adapter touches. Internal to
// the adapter; never exported from the package. Names with a leading underscore are the
// connector's own internals: the adapter checks their shape at run time before patching.

/** `(error)` or `(null, connection)`: how the connector's own pool answers a checkout. */
export type MariaDbAcquireCallback = (error: unknown, connection?: MariaDbConnection) => void;

/** The `resolve` and `reject` functions a raw connection's command methods take. */
export type MariaDbSettle = (value?: unknown) => void;

/**
 * The per-call parameter object the connector builds for a command. Callback front-ends carry
 * the application's callback in it, and call it from the connection's socket context.
 */
export interface MariaDbCommandParam {
  callback?: unknown;
}

/** What a pool keeps of its `ConnOptions` (never read: `user`, `password`). */
export interface MariaDbConnectionOptions {
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
  readonly socketPath?: string;
}

/** The pool's `PoolOptions`, after the connector applied defaults and parsed a connection string. */
export interface MariaDbPoolOptions {
  readonly connectionLimit?: number;
  readonly connOptions?: MariaDbConnectionOptions;
}

/**
 * The connector's raw connection (`lib/connection.js`). Both front-ends (`ConnectionPromise`,
 * `ConnectionCallback`) keep it in a private field and call these methods on it.
 */
export interface MariaDbConnection {
  isValid(): boolean;
  /** The connector's connection information; `status` holds the status flags of the last OK/EOF packet. */
  readonly info?: { readonly status?: unknown };
  query(cmdParam: MariaDbCommandParam, resolve: MariaDbSettle, reject: MariaDbSettle): unknown;
  prepareExecute(cmdParam: MariaDbCommandParam, resolve: MariaDbSettle, reject: MariaDbSettle): unknown;
  batch(cmdParam: MariaDbCommandParam, resolve: MariaDbSettle, reject: MariaDbSettle): unknown;
  changeTransaction(cmdParam: MariaDbCommandParam, resolve: MariaDbSettle, reject: MariaDbSettle): unknown;
}

/** The raw connection methods that send a statement and settle through `resolve`/`reject`. */
export type MariaDbStatementMethodName = 'query' | 'prepareExecute' | 'batch' | 'changeTransaction';

/**
 * The connector's own pool (`lib/pool.js`): the one object behind `PoolPromise`, `PoolCallback`
 * and every pool of a cluster, kept there in a private field.
 */
export interface MariaDbInternalPool {
  readonly opts?: MariaDbPoolOptions;
  readonly closed?: boolean;
  getConnection(cmdParam: MariaDbCommandParam | MariaDbAcquireCallback, callback?: MariaDbAcquireCallback): unknown;
  /** The library's own release, used by `pool.query`/`execute`/`batch` after their statement. */
  release(connection: MariaDbConnection): unknown;
  /** What `connection.release()`/`end()`/`close()` of a pooled connection calls. */
  _handleRelease(connection: MariaDbConnection, callback?: unknown): unknown;
  /** Called whenever an active connection leaves the pool's books: destroy, socket error, release. */
  _endLeak(connection: MariaDbConnection): unknown;
  activeConnections(): number;
  idleConnections(): number;
  taskQueueSize(): number;
  totalConnections(): number;
}

/** The object `createPool` returns (`PoolPromise` or `PoolCallback`). */
export interface MariaDbFrontEndPool {
  getConnection(...args: unknown[]): unknown;
  end?(...args: unknown[]): unknown;
}

/** `PoolCallback.prototype.getConnection(callback)`. */
export type MariaDbCallbackGetConnection = (this: MariaDbFrontEndPool, callback?: unknown) => unknown;

/** The callback front-end's connection class: its static query helper takes the raw connection. */
export interface MariaDbConnectionCallbackClass {
  _QUERY_CMD(connection: MariaDbConnection, cmdParam: MariaDbCommandParam): unknown;
}

/** A module entry point of the connector: `mariadb`, `mariadb/callback`. */
export interface MariaDbEntryModule {
  readonly createPool?: (options: object) => unknown;
}
