// Three pool libraries behind one small face, for the stalled-waiter and verdict scenarios: pg
// (pg-pool) on the test PostgreSQL, mysql2 on the test MariaDB, generic-pool with in-memory
// resources. Each pool waits forever unless `timeoutMs` is given (their defaults).
import type * as GenericPoolModule from 'generic-pool';
import type { Pool as PgPool, PoolClient } from 'pg';
import { requireLibrary, resourceFactory } from './in-memory-resources';
import { loadMysql2, mysql2Options } from './mysql2';
import { loadPg, postgresConfig } from './pg';

/** A connection (or resource) the test holds. */
export type Held = { readonly kind: 'held' };

export interface StallPool {
  acquire(): Promise<Held>;
  release(held: Held): void;
  /** Runs a statement on a held connection; undefined for a pool of in-memory resources. */
  readonly query: ((held: Held, sql: string) => Promise<unknown>) | undefined;
  end(): Promise<void>;
}

export interface StallDriver {
  /** The span name prefix (`<library> wait.stalled`). */
  readonly library: string;
  /** A statement that runs until {@link StallDriver.cancelSlowStatements}; undefined without statements. */
  readonly slowStatement: string | undefined;
  /** A statement of a few tens of milliseconds. */
  readonly shortStatement: string | undefined;
  newPool(max: number, timeoutMs?: number): StallPool;
  /** Whether a metric point's `db.client.connection.pool.name` is one of this driver's pools. */
  ownsPoolName(name: string): boolean;
  /** Ends every running slow statement on the server. */
  cancelSlowStatements(): Promise<void>;
}

/** Call after setupTracing(): each loads its library then, so it is patched. */
export function pgDriver(): StallDriver {
  const pg = loadPg();
  const slowStatement = 'SELECT pg_sleep(30) AS slow';
  return {
    library: 'pg-pool',
    ownsPoolName: (name) => name.includes(`:${postgresConfig().port}/`),
    slowStatement,
    shortStatement: 'SELECT pg_sleep(0.05) AS short',
    newPool(max, timeoutMs = 0) {
      const pool: PgPool = new pg.Pool({ ...postgresConfig(), max, connectionTimeoutMillis: timeoutMs });
      pool.on('error', () => {});
      type Client = PoolClient;
      return {
        acquire: async () => (await pool.connect()) as unknown as Held,
        release: (held) => (held as unknown as Client).release(),
        query: (held, sql) => (held as unknown as Client).query(sql),
        end: () => pool.end(),
      };
    },
    async cancelSlowStatements() {
      const client = new pg.Client(postgresConfig());
      await client.connect();
      try {
        await client.query('SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = $1', [slowStatement]);
      } finally {
        await client.end();
      }
    },
  };
}

export function mysql2Driver(): StallDriver {
  const mysql2 = loadMysql2();
  const slowStatement = 'SELECT SLEEP(30) AS slow';
  return {
    library: 'mysql2',
    ownsPoolName: (name) => name.includes(`:${mysql2Options().port}/`),
    slowStatement,
    shortStatement: 'SELECT SLEEP(0.05) AS short',
    newPool(max, queueLimit = 0) {
      const pool = mysql2.createPool({ ...mysql2Options(), connectionLimit: max, queueLimit }).promise();
      type Connection = Awaited<ReturnType<typeof pool.getConnection>>;
      return {
        acquire: async () => (await pool.getConnection()) as unknown as Held,
        release: (held) => (held as unknown as Connection).release(),
        query: (held, sql) => (held as unknown as Connection).query(sql),
        end: () => pool.end(),
      };
    },
    async cancelSlowStatements() {
      const connection = await mysql2.createConnection(mysql2Options()).promise();
      try {
        const [rows] = await connection.query('SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = ?', [slowStatement]);
        for (const row of rows as { ID: number }[]) await connection.query(`KILL QUERY ${Number(row.ID)}`);
      } finally {
        await connection.end();
      }
    },
  };
}

export function genericPoolDriver(): StallDriver {
  const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
  return {
    library: 'generic-pool',
    ownsPoolName: (name) => name === 'generic-pool',
    slowStatement: undefined,
    shortStatement: undefined,
    newPool(max, timeoutMs) {
      const options: GenericPoolModule.Options = timeoutMs === undefined ? { max } : { max, acquireTimeoutMillis: timeoutMs };
      const pool = genericPool.createPool(resourceFactory(), options);
      return {
        acquire: async () => (await pool.acquire()) as unknown as Held,
        release: (held) => void pool.release(held as never),
        query: undefined,
        end: async () => {
          await pool.drain();
          await pool.clear();
        },
      };
    },
    async cancelSlowStatements() {},
  };
}
