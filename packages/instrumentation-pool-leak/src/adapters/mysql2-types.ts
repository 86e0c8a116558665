// The parts of mysql2 3.x this adapter touches. Internal to the adapter; never exported from the
// package. Underscored members are mysql2 internals, present in every 3.x release checked
// (3.0.0, 3.9.8, 3.19.1, 3.24.6).

/** mysql2's internal FIFO (denque in early 3.x, its own ring queue later): only its size is read. */
export interface Mysql2Queue {
  readonly length: number;
}

/** `pool.config.connectionConfig`: the settings every pooled connection is made with. */
export interface Mysql2ConnectionConfig {
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
  readonly socketPath?: string;
  /** When set, `conn.end()` takes a pooled connection out of the pool instead of releasing it. */
  readonly gracefulEnd?: boolean;
}

export interface Mysql2PoolConfig {
  readonly connectionConfig: Mysql2ConnectionConfig;
  /** 0 means unlimited. */
  readonly connectionLimit: number;
}

export type Mysql2GetConnectionCallback = (error: unknown, connection?: Mysql2PoolConnection) => void;

/** A callback-API pool (`mysql.createPool()`; `mysql2/promise` pools wrap one). */
export interface Mysql2Pool {
  readonly config: Mysql2PoolConfig;
  readonly _allConnections: Mysql2Queue;
  readonly _freeConnections: Mysql2Queue;
  readonly _connectionQueue: Mysql2Queue;
  getConnection(callback: Mysql2GetConnectionCallback): unknown;
  releaseConnection(connection: Mysql2PoolConnection): unknown;
  query(...args: unknown[]): unknown;
  execute(...args: unknown[]): unknown;
}

/** Any mysql2 connection: the statement methods. */
export interface Mysql2Connection {
  query(...args: unknown[]): unknown;
  execute(...args: unknown[]): unknown;
}

/**
 * A `Query` or `Execute` command as `query()`/`execute()` return it. `_rows` holds one entry per
 * result: a row array, or the parsed OK packet (`ResultSetHeader`, with the status flags).
 */
export interface Mysql2Command {
  readonly _rows?: unknown;
}

/** A connection handed out by a pool. */
export interface Mysql2PoolConnection extends Mysql2Connection {
  readonly config: Mysql2ConnectionConfig;
  /** The server's greeting; its version string names MariaDB servers. */
  readonly _handshakePacket?: { readonly serverVersion?: string } | null;
  /** The owning pool; null once the connection was taken out of it (destroyed, lost, ended). */
  readonly _pool: { readonly _closed: boolean } | null;
  release(): unknown;
  destroy(): unknown;
  end(...args: unknown[]): unknown;
}

/** `createPoolCluster()`: pools by node id. */
export interface Mysql2PoolCluster {
  readonly _nodes?: Readonly<Record<string, { readonly pool: object } | undefined>>;
  add(...args: unknown[]): unknown;
  of(pattern?: string, selector?: string): Mysql2PoolNamespace;
}

/** `cluster.of(pattern)`: checks out from one of the cluster's pools. */
export interface Mysql2PoolNamespace {
  query(...args: unknown[]): unknown;
  execute(...args: unknown[]): unknown;
}

/** A class as the adapter sees it: only its prototype is patched. */
export interface Mysql2Class<Instance> {
  readonly prototype: Instance;
}

export type Mysql2PoolClusterClass = Mysql2Class<Mysql2PoolCluster> & (new () => Mysql2PoolCluster);

/** `mysql2/promise`'s pool (`lib/promise/pool.js`, 3.2x): wraps a callback pool. */
export interface Mysql2PromisePool {
  getConnection(...args: unknown[]): unknown;
}
