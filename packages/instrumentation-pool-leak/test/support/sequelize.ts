// Sequelize 6 and 7 against the real PostgreSQL and MariaDB the global setup started: one way
// to open each (version × dialect) so every suite runs the same matrix. Load only after
// setupTracing(), so require-in-the-middle patches sequelize-pool and Sequelize's files.
import { requireLibrary } from './in-memory-resources';
import { mariadbConfig } from './mariadb';
import { postgresConfig } from './pg';

/** The part of a Sequelize instance (6 or 7) the tests use. */
export interface AnySequelize {
  define(name: string, attributes: Record<string, unknown>, options?: Record<string, unknown>): AnyModel;
  query(sql: string, options?: Record<string, unknown>): Promise<unknown>;
  transaction<T>(work: (transaction: unknown) => Promise<T>): Promise<T>;
  sync(options?: Record<string, unknown>): Promise<unknown>;
  /** Sequelize 7's unmanaged transaction (6: `transaction()` without a callback). */
  startUnmanagedTransaction?(): Promise<UnmanagedTransaction>;
  close(): Promise<void>;
  /** Sequelize 7: the `ReplicationPool`. */
  readonly pool?: { readonly write: SequelizePoolLike };
  /** Sequelize 6. */
  readonly connectionManager?: { readonly pool: SequelizePoolLike };
}

export interface SequelizePoolLike {
  acquire(): Promise<unknown>;
  release(connection: unknown): void;
  destroy(connection: unknown): Promise<void>;
  readonly size: number;
  readonly available: number;
  readonly using: number;
  readonly waiting: number;
}

export interface AnyModel {
  findAll(options?: Record<string, unknown>): Promise<unknown[]>;
  create(values: Record<string, unknown>, options?: Record<string, unknown>): Promise<unknown>;
  drop(): Promise<unknown>;
}

export type SequelizeVersion = 6 | 7;
export type SequelizeDialect = 'postgres' | 'mysql' | 'mariadb';

export interface SequelizeTarget {
  readonly version: SequelizeVersion;
  readonly dialect: SequelizeDialect;
  /** `db.system.name` the checkout spans carry. */
  readonly dbSystem: string;
  /** The secret the connection options carry, to prove it is never exported. */
  readonly password: string;
  readonly user: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
}

/** Every (version × dialect) this machine can run: MariaDB ones only when its server is up. */
export function sequelizeTargets(): SequelizeTarget[] {
  const targets: SequelizeTarget[] = [];
  const pg = postgresConfig();
  const maria = mariadbConfig();
  for (const version of [6, 7] as const) {
    targets.push({ version, dialect: 'postgres', dbSystem: 'postgresql', ...pg });
    if (maria !== undefined) {
      targets.push({ version, dialect: 'mysql', dbSystem: 'mysql', ...maria });
      targets.push({ version, dialect: 'mariadb', dbSystem: 'mariadb', ...maria });
    }
  }
  return targets;
}

export function targetName(target: SequelizeTarget): string {
  return `Sequelize ${target.version} ${target.dialect}`;
}

export interface PoolOptions {
  readonly max?: number;
  readonly acquire?: number;
}

/** A new Sequelize on `target` (pool options as Sequelize takes them), logging off. */
export function openSequelize(target: SequelizeTarget, pool: PoolOptions = {}): AnySequelize {
  const { host, port, database, user, password } = target;
  const poolOptions = { max: pool.max ?? 5, min: 0, acquire: pool.acquire ?? 60_000, idle: 10_000 };
  if (target.version === 6) {
    const { Sequelize } = requireLibrary<{ Sequelize: new (options: Record<string, unknown>) => AnySequelize }>('sequelize');
    return new Sequelize({ dialect: target.dialect, host, port, database, username: user, password, pool: poolOptions, logging: false });
  }
  const { Sequelize } = requireLibrary<{ Sequelize: new (options: Record<string, unknown>) => AnySequelize }>('@sequelize/core');
  const dialects: Record<SequelizeDialect, string> = { postgres: '@sequelize/postgres', mysql: '@sequelize/mysql', mariadb: '@sequelize/mariadb' };
  const dialectModule = requireLibrary<Record<string, unknown>>(dialects[target.dialect]);
  const dialectClass = { postgres: dialectModule['PostgresDialect'], mysql: dialectModule['MySqlDialect'], mariadb: dialectModule['MariaDbDialect'] }[target.dialect];
  return new Sequelize({ dialect: dialectClass, host, port, database, user, password, pool: poolOptions, logging: false });
}

/** The sequelize-pool under a Sequelize instance (its write pool in 7). */
export function poolOf(sequelize: AnySequelize): SequelizePoolLike {
  const pool = sequelize.pool?.write ?? sequelize.connectionManager?.pool;
  if (pool === undefined) throw new Error('no sequelize-pool found');
  return pool;
}

/** SQL that kills the server session of `connection` from another one. */
export function killStatement(target: SequelizeTarget, sessionId: number): string {
  return target.dialect === 'postgres' ? `SELECT pg_terminate_backend(${sessionId})` : `KILL ${sessionId}`;
}

/** SQL that returns the current session's id as `id`. */
export function sessionIdStatement(target: SequelizeTarget): string {
  return target.dialect === 'postgres' ? 'SELECT pg_backend_pid() AS id' : 'SELECT CONNECTION_ID() AS id';
}

export interface UnmanagedTransaction {
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

/** A transaction the application commits or rolls back itself: it holds its connection until then. */
export function startTransaction(sequelize: AnySequelize): Promise<UnmanagedTransaction> {
  if (sequelize.startUnmanagedTransaction !== undefined) return sequelize.startUnmanagedTransaction();
  return (sequelize.transaction as unknown as () => Promise<UnmanagedTransaction>)();
}
