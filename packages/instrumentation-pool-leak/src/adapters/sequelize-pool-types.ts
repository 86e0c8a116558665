// The parts of sequelize-pool (7.x, 8.x) and Sequelize (6, 7) this adapter touches. Internal to
// the adapter; never exported from the package.

/** A sequelize-pool `Pool`: everything below is public API of the library. */
export interface SequelizePool {
  /** Resources created plus those being created. */
  readonly size: number;
  readonly available: number;
  readonly using: number;
  readonly waiting: number;
  readonly maxSize: number;
  /** The `name` given to the pool (Sequelize names its own `sequelize` / `sequelize:write`). */
  readonly name: unknown;
  acquire(): Promise<unknown>;
  release(resource: unknown): void;
  destroy(resource: unknown): Promise<void>;
}

export interface SequelizePoolModule {
  Pool: { prototype: SequelizePool };
  TimeoutError: Function;
}

/** Connection options of Sequelize: only these fields are ever read (never user or password). */
export interface SequelizeConnectionOptions {
  readonly host?: unknown;
  readonly port?: unknown;
  readonly database?: unknown;
}

/** What Sequelize keeps in `pool`: one sequelize-pool, or a read and a write pool (replication). */
export interface SequelizePools {
  readonly read?: unknown;
  readonly write?: unknown;
}

/** Sequelize 6's `ConnectionManager` (`lib/dialects/abstract/connection-manager.js`). */
export interface Sequelize6ConnectionManager {
  readonly pool?: unknown;
  readonly config?: SequelizeConnectionOptions & { readonly replication?: { readonly write?: SequelizeConnectionOptions } | false };
  readonly dialectName?: unknown;
  getConnection(...args: unknown[]): Promise<unknown>;
}

/** Sequelize 6's and 7's `Sequelize` (7: the methods come from `SequelizeTypeScript`). */
export interface SequelizeInstance {
  /** Sequelize 7: a `ReplicationPool` with `read` and `write` sequelize-pools. */
  readonly pool?: unknown;
  /** Sequelize 7: connection options live under `replication.write`. */
  readonly options?: { readonly replication?: { readonly write?: SequelizeConnectionOptions } | false };
  readonly dialect?: { readonly name?: unknown };
  query(...args: unknown[]): Promise<unknown>;
  queryRaw(...args: unknown[]): Promise<unknown>;
  transaction(...args: unknown[]): Promise<unknown>;
  startUnmanagedTransaction(...args: unknown[]): Promise<unknown>;
  withConnection(...args: unknown[]): Promise<unknown>;
}

export interface SequelizeClass {
  prototype: SequelizeInstance;
}

export interface SequelizeModule {
  Sequelize: SequelizeClass;
}

export interface SequelizeTypeScriptModule {
  SequelizeTypeScript: SequelizeClass;
}

export interface Sequelize6ConnectionManagerClass {
  prototype: Sequelize6ConnectionManager;
}
