// What every pool of the demo shares: how it is created, and its own database. pg has no pool
// name option, so the instrumentation names a pool `host:port/database`; a database per pool is
// what keeps the three pools of the demo apart in the spans, the metrics and the report.
// Loaded only after the SDK started, so that `pg` is patched when it is first required.
import pg from 'pg';

/** Where a pool connects. Never logged: it carries the password. */
export interface DatabaseOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

export interface PoolSizing {
  readonly max: number;
  /** pg's connectionTimeoutMillis: how long a checkout waits for a free connection. */
  readonly checkoutTimeoutMs: number;
}

/** A pg pool with what every pg user attaches to it. */
export function createPool(database: DatabaseOptions, sizing: PoolSizing): pg.Pool {
  const pool = new pg.Pool({ ...database, max: sizing.max, connectionTimeoutMillis: sizing.checkoutTimeoutMs });
  // A leaked client has no error listener of its own while it is checked out; without one, the
  // server going away at the end of the demo would crash the process with an 'error' event.
  const guarded = new WeakSet<pg.PoolClient>();
  pool.on('acquire', (client) => {
    if (guarded.has(client)) return;
    guarded.add(client);
    client.on('error', () => {});
  });
  pool.on('error', () => {});
  return pool;
}

/**
 * Creates database `name` next to `server`'s (if missing) and runs `schema` in it, each with a
 * client of its own, so that set-up work shows no pool spans.
 */
export async function createDatabase(server: DatabaseOptions, name: string, schema: string): Promise<DatabaseOptions> {
  await withClient(server, async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    // CREATE DATABASE takes no parameters; `name` is one of the demo's constants.
    if (rowCount === 0) await client.query(`CREATE DATABASE "${name}"`);
  });
  const database = { ...server, database: name };
  await withClient(database, (client) => client.query(schema));
  return database;
}

/** Runs `work` on a client of its own and always closes it. */
export async function withClient<T>(database: DatabaseOptions, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(database);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
