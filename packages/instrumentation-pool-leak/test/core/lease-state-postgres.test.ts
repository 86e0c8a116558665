// Lease state the server agrees with (#20), on the real PostgreSQL: after each sequence of
// statements, the `pool.lease.state` of the leaked lease is compared with what
// `pg_stat_activity.state` says about the same backend, read over a separate connection. A
// statement that failed opens no transaction; an error inside one leaves it aborted; COMMIT,
// ROLLBACK and savepoints end or keep it as the server does.
import type { Knex } from 'knex';
import { createRequire } from 'node:module';
import type PostgresModule from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { requireLibrary } from '../support/in-memory-resources';
import { sleep } from '../support/mysql2';
import { loadPg, postgresConfig } from '../support/pg';
import { reportedLeaseState, runAll } from '../support/lease-state';
import { setupTracing } from '../support/tracing';

const THRESHOLD_MS = 100;
// The leak sweep runs when the test says so: its interval and the lease clock are fake, so each
// lease is reported after its last statement however slow the machine is. I/O timers stay real.
vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'performance'] });
const tracing = setupTracing({ leakThresholdMs: THRESHOLD_MS });
const pg = loadPg();
const postgres = createRequire(import.meta.url)('postgres') as typeof PostgresModule;
const knex = requireLibrary<typeof import('knex').knex>('knex');
const nodePostgres = requireLibrary<typeof import('drizzle-orm/node-postgres')>('drizzle-orm/node-postgres');

/** `pg_stat_activity.state` → the `pool.lease.state` that names the same thing. */
const FROM_PG_STAT_ACTIVITY: Readonly<Record<string, string>> = {
  idle: 'idle',
  'idle in transaction': 'idle_in_transaction',
  'idle in transaction (aborted)': 'idle_in_transaction_aborted',
};

/** The sequences, each run on a fresh lease; statements that fail are part of the sequence. */
const SEQUENCES: ReadonlyArray<readonly [string, readonly string[], string]> = [
  // drizzle-orm's transaction() with a bad isolation level leaks exactly this connection.
  ['a BEGIN that failed', ['BEGIN ISOLATION LEVEL NONSENSE'], 'idle'],
  ['a START TRANSACTION that failed', ['START TRANSACTION ISOLATION LEVEL NONSENSE'], 'idle'],
  ['a statement that failed outside a transaction', ['SELECT 1 / 0'], 'idle'],
  ['BEGIN', ['BEGIN'], 'idle_in_transaction'],
  ['BEGIN and a statement', ['BEGIN', 'SELECT count(*) FROM state_parent'], 'idle_in_transaction'],
  ['an error inside a transaction', ['BEGIN', 'SELECT 1 / 0'], 'idle_in_transaction_aborted'],
  ['statements after the error', ['BEGIN', 'SELECT 1 / 0', 'SELECT 1'], 'idle_in_transaction_aborted'],
  ['ROLLBACK', ['BEGIN', 'SELECT 1', 'ROLLBACK'], 'idle'],
  ['ROLLBACK of an aborted transaction', ['BEGIN', 'SELECT 1 / 0', 'ROLLBACK'], 'idle'],
  ['COMMIT', ['BEGIN', 'INSERT INTO state_parent VALUES (DEFAULT)', 'COMMIT'], 'idle'],
  ['COMMIT of an aborted transaction (the server answers ROLLBACK)', ['BEGIN', 'SELECT 1 / 0', 'COMMIT'], 'idle'],
  ['a COMMIT that failed (deferred foreign key)', ['BEGIN', 'INSERT INTO state_child VALUES (-1)', 'COMMIT'], 'idle'],
  ['SAVEPOINT', ['BEGIN', 'SAVEPOINT s1'], 'idle_in_transaction'],
  ['ROLLBACK TO SAVEPOINT after an error', ['BEGIN', 'SAVEPOINT s1', 'SELECT 1 / 0', 'ROLLBACK TO SAVEPOINT s1'], 'idle_in_transaction'],
  ['RELEASE SAVEPOINT', ['BEGIN', 'SAVEPOINT s1', 'RELEASE SAVEPOINT s1'], 'idle_in_transaction'],
  ['ROLLBACK TO a savepoint that does not exist', ['BEGIN', 'ROLLBACK TO SAVEPOINT missing'], 'idle_in_transaction_aborted'],
  ['COMMIT AND CHAIN', ['BEGIN', 'COMMIT AND CHAIN'], 'idle_in_transaction'],
];

let observer: InstanceType<typeof pg.Client>;

beforeAll(async () => {
  // Not from a pool: the observer is never a lease, so its own statements are never counted.
  observer = new pg.Client(postgresConfig());
  await observer.connect();
  await observer.query('CREATE TABLE IF NOT EXISTS state_parent (id serial PRIMARY KEY)');
  await observer.query(
    'CREATE TABLE IF NOT EXISTS state_child (parent int REFERENCES state_parent (id) DEFERRABLE INITIALLY DEFERRED)',
  );
});
afterAll(async () => {
  await observer.end();
  tracing.instrumentation.disable();
});
beforeEach(() => tracing.exporter.reset());

/** The backend process of a pg client (pg sets it from BackendKeyData; its typings omit it). */
function backendOf(client: object): number {
  return (client as { processID: number }).processID;
}

/** What the server says of backend `pid`, as a `pool.lease.state` value. */
async function serverState(pid: number): Promise<string> {
  return serverStateWhere('pid = $1', pid);
}

/**
 * `pg_stat_activity.state` of the one backend matching `condition`. The backend sends an
 * ErrorResponse before it finishes the statement (and then reports itself idle): a state still
 * `active` is read again, a bounded number of times.
 */
async function serverStateWhere(condition: string, value: unknown): Promise<string> {
  let state = 'no such backend';
  for (let attempt = 0; attempt < 200; attempt++) {
    const { rows } = await observer.query<{ state: string }>(`SELECT state FROM pg_stat_activity WHERE ${condition}`, [value]);
    state = rows[0]?.state ?? 'no such backend';
    if (state !== 'active') break;
    await sleep(5);
  }
  return FROM_PG_STAT_ACTIVITY[state] ?? state;
}

/** The `pool.lease.state` of the one `<library> leak` span this test caused. */
const reportedState = (library: string): Promise<unknown> => reportedLeaseState(tracing, library, THRESHOLD_MS);

describe('pg-pool: the state agrees with pg_stat_activity', () => {
  const pool = new pg.Pool({ ...postgresConfig(), max: 2 });
  afterAll(() => pool.end());

  it.each(SEQUENCES)('%s', async (_name, statements, expected) => {
    const client = await pool.connect();
    await runAll((statement) => client.query(statement), statements);
    const reported = await reportedState('pg-pool');
    const server = await serverState(backendOf(client));
    // Destroyed, not returned: a connection left inside a transaction must not serve the next test.
    client.release(true);
    expect({ reported, server }).toEqual({ reported: expected, server: expected });
  });

  it('the callback form of client.query reports the same as the server', async () => {
    const client = await pool.connect();
    await new Promise<void>((resolve) => client.query('BEGIN', () => client.query('SELECT 1 / 0', () => resolve())));
    const reported = await reportedState('pg-pool');
    const server = await serverState(backendOf(client));
    client.release(true);
    expect({ reported, server }).toEqual({ reported: 'idle_in_transaction_aborted', server: 'idle_in_transaction_aborted' });
  });

  it('holders name the aborted transaction as pg_stat_activity does', async () => {
    const small = new pg.Pool({ ...postgresConfig(), max: 1, connectionTimeoutMillis: 500 });
    const client = await small.connect();
    await runAll((statement) => client.query(statement), ['BEGIN', 'SELECT 1 / 0']);
    const failure = await small.connect().then(
      () => undefined,
      (error: unknown) => error as { poolHolders?: readonly string[] },
    );
    client.release(true);
    await small.end();
    expect(failure?.poolHolders).toEqual([expect.stringMatching(/ held \d+ ms — idle \d+ ms in transaction \(aborted\), last SELECT$/)]);
  });
});

describe('drizzle-orm transaction() with a bad isolation level (its BEGIN runs before its try/finally)', () => {
  it('leaks the client, reported idle as pg_stat_activity says, not in a transaction', async () => {
    const applicationName = 'lease-state drizzle';
    const pool = new pg.Pool({ ...postgresConfig(), max: 1, application_name: applicationName });
    const db = nodePostgres.drizzle({ client: pool });
    const outcome = await db.transaction(async () => 'unreached', { isolationLevel: 'nonsense' as 'serializable' }).then(
      () => 'resolved',
      (error: unknown) => (error as Error).message,
    );
    expect(outcome).toMatch(/^Failed query: begin isolation level nonsense/);
    const reported = await reportedState('pg-pool');
    const server = await serverStateWhere('application_name = $1', applicationName);
    expect({ reported, server }).toEqual({ reported: 'idle', server: 'idle' });
    // The client drizzle never released: closed with the pool's sockets.
    await Promise.race([pool.end(), sleep(500)]);
  });
});

describe('knex on pg (tarn lends the pg Client): the state agrees with pg_stat_activity', () => {
  let db: Knex;
  beforeAll(() => {
    db = knex({ client: 'pg', connection: postgresConfig(), pool: { min: 0, max: 2 } });
  });
  afterAll(() => db.destroy());

  it.each([
    ['a BEGIN that failed', ['BEGIN ISOLATION LEVEL NONSENSE'], 'idle'],
    ['an error inside a transaction', ['BEGIN', 'SELECT 1 / 0'], 'idle_in_transaction_aborted'],
  ] as const)('%s', async (_name, statements, expected) => {
    const connection = (await db.client.acquireConnection()) as InstanceType<typeof pg.Client>;
    await runAll((statement) => connection.query(statement), statements);
    const reported = await reportedState('tarn');
    const server = await serverState(backendOf(connection));
    await connection.query('ROLLBACK');
    await db.client.releaseConnection(connection);
    expect({ reported, server }).toEqual({ reported: expected, server: expected });
  });
});

describe('postgres.js (keeps no ReadyForQuery status: the state is told from the statements and their outcome)', () => {
  it.each(SEQUENCES)('%s', async (name, statements, expected) => {
    // One connection per sequence, named so that pg_stat_activity finds it without a statement on it.
    const applicationName = `lease-state ${name}`.slice(0, 60);
    const { host, port, user, password, database } = postgresConfig();
    const sql = postgres({ host, port, user, password, database, max: 1, onnotice: () => {}, connection: { application_name: applicationName } });
    try {
      const reserved = await sql.reserve();
      await runAll((statement) => reserved.unsafe(statement), statements);
      const reported = await reportedState('postgres');
      const server = await serverStateWhere('application_name = $1', applicationName);
      reserved.release();
      expect({ reported, server }).toEqual({ reported: expected, server: expected });
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
