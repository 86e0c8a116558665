// Holders that explain themselves (#13): on real servers, through every adapter that sees
// statements, a leaked lease says whether it is busy in a statement, idle, or idle inside an
// open transaction, how many statements it ran and what the last one was, without any literal.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { Knex } from 'knex';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { requireLibrary } from '../support/in-memory-resources';
import { describeWithMariaDb } from '../support/mariadb';
import { loadMariaDb, loadMariaDbCallback, mariadbOptions } from '../support/mariadb-connector';
import { loadMysql2, loadMysql2Promise, mysql2Options, until } from '../support/mysql2';
import { loadPg, postgresConfig } from '../support/pg';
import { allAttributeText, eventNamed } from '../support/spans';
import { setupTracing } from '../support/tracing';

const THRESHOLD_MS = 150;
const SLOW_SECONDS = 0.8;
/** Literals that must never reach telemetry. */
const SECRET = 'hunter2-secret-literal';
const SECRET_NUMBER = 987654321;

const tracing = setupTracing({ leakThresholdMs: THRESHOLD_MS });
const pg = loadPg();
const mysql2 = loadMysql2();
const mysql2Promise = loadMysql2Promise();
const mariadb = loadMariaDb();
const mariadbCallback = loadMariaDbCallback();
const knex = requireLibrary<typeof import('knex').knex>('knex');

beforeEach(() => tracing.exporter.reset());
afterAll(() => tracing.instrumentation.disable());

/** Waits for the `<library> leak` span of the one lease the test holds. */
async function leakSpan(library: string): Promise<ReadableSpan> {
  await until(`${library} leak span`, () => tracing.spansNamed(`${library} leak`).length > 0);
  const [span] = tracing.spansNamed(`${library} leak`);
  return span!;
}

/** The lease-state attributes of the leak span, and the same on the checkout's event once it ends. */
function leaseState(span: ReadableSpan) {
  return {
    state: span.attributes['pool.lease.state'],
    statements: span.attributes['pool.lease.statements'],
    summary: span.attributes['db.query.summary'],
    idleMs: Number(span.attributes['pool.lease.idle_ms']),
  };
}

function expectSameOnCheckoutEvent(library: string, leak: ReadableSpan): void {
  const [checkout] = tracing.spansNamed(`${library} checkout`);
  const suspected = eventNamed(checkout!, 'pool.leak.suspected');
  for (const key of ['pool.lease.state', 'pool.lease.statements', 'db.query.summary']) {
    expect(suspected?.attributes?.[key]).toEqual(leak.attributes[key]);
  }
}

/** The error a checkout that must fail rejects with. */
async function rejectionOf(checkout: Promise<unknown>): Promise<{ poolHolders?: readonly string[] }> {
  const outcome = await checkout.then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  if (outcome === undefined) throw new Error('the checkout should have failed');
  return outcome.error as { poolHolders?: readonly string[] };
}

function expectNoSecret(): void {
  const text = allAttributeText(tracing.exporter.getFinishedSpans());
  expect(text).not.toContain(SECRET);
  expect(text).not.toContain(String(SECRET_NUMBER));
}

describe('pg-pool', () => {
  const pool = new pg.Pool({ ...postgresConfig(), max: 2 });
  beforeAll(async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS lease_state_entries (id serial PRIMARY KEY, note text, amount int)');
  });
  afterAll(() => pool.end());

  it('a holder waiting on its statement is busy', async () => {
    const client = await pool.connect();
    const slow = client.query(`SELECT pg_sleep(${SLOW_SECONDS}), '${SECRET}' AS note`);
    const leak = await leakSpan('pg-pool');
    await slow;
    client.release();
    expect(leaseState(leak)).toMatchObject({ state: 'busy', statements: 1, summary: 'SELECT', idleMs: 0 });
    expectSameOnCheckoutEvent('pg-pool', leak);
    expectNoSecret();
  });

  it('a holder that ran its statements and keeps the connection is idle', async () => {
    const client = await pool.connect();
    await client.query('SELECT id FROM lease_state_entries WHERE note = $1', [SECRET]);
    await new Promise<void>((resolve, reject) =>
      client.query(`SELECT count(*) FROM lease_state_entries WHERE amount = ${SECRET_NUMBER}`, (error) => (error ? reject(error) : resolve())),
    );
    const leak = await leakSpan('pg-pool');
    client.release();
    const state = leaseState(leak);
    expect(state).toMatchObject({ state: 'idle', statements: 2, summary: 'SELECT lease_state_entries' });
    expect(state.idleMs).toBeGreaterThan(0);
    expectSameOnCheckoutEvent('pg-pool', leak);
    expectNoSecret();
  });

  it('a statement pg refuses at once (it throws) does not leave the holder busy', async () => {
    const client = await pool.connect();
    expect(() => client.query(null as unknown as string)).toThrow(TypeError);
    const leak = await leakSpan('pg-pool');
    client.release();
    expect(leaseState(leak)).toMatchObject({ state: 'idle', statements: 1 });
  });

  it('a holder after BEGIN and a statement is idle in transaction', async () => {
    const client = await pool.connect();
    await client.query('BEGIN');
    await client.query({ text: 'INSERT INTO lease_state_entries (note, amount) VALUES ($1, $2)', values: [SECRET, SECRET_NUMBER] });
    const leak = await leakSpan('pg-pool');
    await client.query('ROLLBACK');
    client.release();
    expect(leaseState(leak)).toMatchObject({ state: 'idle_in_transaction', statements: 2, summary: 'INSERT lease_state_entries' });
    expectNoSecret();
  });

  it('after COMMIT the holder is idle again (pool.holders of an exhausted pool)', async () => {
    const small = new pg.Pool({ ...postgresConfig(), max: 1, connectionTimeoutMillis: 300 });
    const client = await small.connect();
    await client.query('BEGIN');
    await client.query('UPDATE lease_state_entries SET amount = 1 WHERE false');
    const inTransaction = await rejectionOf(small.connect());
    await client.query('COMMIT');
    const afterCommit = await rejectionOf(small.connect());
    client.release();
    await small.end();
    expect(inTransaction.poolHolders).toEqual([expect.stringMatching(/ held \d+ ms — idle \d+ ms in transaction, last UPDATE lease_state_entries$/)]);
    expect(afterCommit.poolHolders).toEqual([expect.stringMatching(/ held \d+ ms — idle \d+ ms, last COMMIT$/)]);
    const [failed] = tracing.spansNamed('pg-pool checkout').filter((span) => eventNamed(span, 'pool.exhausted') !== undefined);
    expect(eventNamed(failed!, 'pool.exhausted')?.attributes?.['pool.holders']).toEqual(inTransaction.poolHolders);
  });
});

describeWithMariaDb('mysql2', () => {
  const pool = mysql2Promise.createPool({ ...mysql2Options(), connectionLimit: 2 });
  const callbackPool = mysql2.createPool({ ...mysql2Options(), connectionLimit: 2 });
  beforeAll(async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS lease_state_entries (id int AUTO_INCREMENT PRIMARY KEY, note text, amount int)');
  });
  afterAll(async () => {
    await pool.end();
    await new Promise<void>((resolve) => callbackPool.end(() => resolve()));
  });

  it('a holder waiting on its statement is busy (promise API)', async () => {
    const connection = await pool.getConnection();
    const slow = connection.query(`SELECT SLEEP(${SLOW_SECONDS}), '${SECRET}'`);
    const leak = await leakSpan('mysql2');
    await slow;
    connection.release();
    expect(leaseState(leak)).toMatchObject({ state: 'busy', statements: 1, summary: 'SELECT', idleMs: 0 });
    expectSameOnCheckoutEvent('mysql2', leak);
    expectNoSecret();
  });

  it('a holder that ran its statements is idle (callback API, execute and query)', async () => {
    const connection = await new Promise<import('mysql2').PoolConnection>((resolve, reject) =>
      callbackPool.getConnection((error, conn) => (error ? reject(error) : resolve(conn))),
    );
    await new Promise<void>((resolve, reject) =>
      connection.execute('SELECT id FROM lease_state_entries WHERE note = ?', [SECRET], (error) => (error ? reject(error) : resolve())),
    );
    await new Promise<void>((resolve, reject) =>
      connection.query(`DELETE FROM lease_state_entries WHERE amount = ${SECRET_NUMBER}`, (error) => (error ? reject(error) : resolve())),
    );
    const leak = await leakSpan('mysql2');
    connection.release();
    expect(leaseState(leak)).toMatchObject({ state: 'idle', statements: 2, summary: 'DELETE lease_state_entries' });
    expectNoSecret();
  });

  it('a holder after beginTransaction and a statement is idle in transaction', async () => {
    const connection = await pool.getConnection();
    await connection.beginTransaction();
    await connection.execute('INSERT INTO lease_state_entries (note, amount) VALUES (?, ?)', [SECRET, SECRET_NUMBER]);
    const leak = await leakSpan('mysql2');
    await connection.rollback();
    connection.release();
    expect(leaseState(leak)).toMatchObject({ state: 'idle_in_transaction', statements: 2, summary: 'INSERT lease_state_entries' });
    expectNoSecret();
  });
});

describeWithMariaDb('mariadb', () => {
  const pool = mariadb.createPool({ ...mariadbOptions(), connectionLimit: 2 });
  const callbackPool = mariadbCallback.createPool({ ...mariadbOptions(), connectionLimit: 2 });
  beforeAll(async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS lease_state_entries (id int AUTO_INCREMENT PRIMARY KEY, note text, amount int)');
  });
  afterAll(async () => {
    await pool.end();
    await new Promise<void>((resolve) => callbackPool.end(() => resolve()));
  });

  it('a holder waiting on its statement is busy', async () => {
    const connection = await pool.getConnection();
    const slow = connection.query(`SELECT SLEEP(${SLOW_SECONDS}), '${SECRET}'`);
    const leak = await leakSpan('mariadb');
    await slow;
    await connection.release();
    expect(leaseState(leak)).toMatchObject({ state: 'busy', statements: 1, summary: 'SELECT', idleMs: 0 });
    expectSameOnCheckoutEvent('mariadb', leak);
    expectNoSecret();
  });

  it('a holder that ran its statements is idle (callback API)', async () => {
    const connection = await new Promise<import('mariadb/callback').PoolConnection>((resolve, reject) =>
      callbackPool.getConnection((error, conn) => (error ? reject(error) : resolve(conn!))),
    );
    await new Promise<void>((resolve, reject) =>
      connection.query(`SELECT note FROM lease_state_entries WHERE amount = ${SECRET_NUMBER}`, (error) => (error ? reject(error) : resolve())),
    );
    const leak = await leakSpan('mariadb');
    connection.release(() => undefined);
    expect(leaseState(leak)).toMatchObject({ state: 'idle', statements: 1, summary: 'SELECT lease_state_entries' });
    expectNoSecret();
  });

  it('a holder after beginTransaction and a statement is idle in transaction', async () => {
    const connection = await pool.getConnection();
    await connection.beginTransaction();
    await connection.execute('INSERT INTO lease_state_entries (note, amount) VALUES (?, ?)', [SECRET, SECRET_NUMBER]);
    const leak = await leakSpan('mariadb');
    await connection.rollback();
    await connection.release();
    expect(leaseState(leak)).toMatchObject({ state: 'idle_in_transaction', statements: 2, summary: 'INSERT lease_state_entries' });
    expectNoSecret();
  });
});

describe('knex on pg', () => {
  let db: Knex;
  beforeAll(async () => {
    db = knex({ client: 'pg', connection: postgresConfig(), pool: { min: 0, max: 2 } });
    await db.raw('CREATE TABLE IF NOT EXISTS lease_state_entries (id serial PRIMARY KEY, note text, amount int)');
  });
  afterAll(() => db.destroy());

  it('a query still running is busy', async () => {
    tracing.exporter.reset();
    const slow = db.raw(`SELECT pg_sleep(${SLOW_SECONDS})`);
    const done = slow.then(() => undefined);
    const leak = await leakSpan('tarn');
    await done;
    expect(leaseState(leak)).toMatchObject({ state: 'busy', statements: 1, summary: 'SELECT' });
  });

  it('a transaction waiting between statements is idle in transaction', async () => {
    let leak: ReadableSpan | undefined;
    await db.transaction(async (trx) => {
      await trx('lease_state_entries').insert({ note: SECRET, amount: SECRET_NUMBER });
      leak = await leakSpan('tarn');
      throw new Error('roll back');
    }).catch(() => undefined);
    expect(leaseState(leak!)).toMatchObject({ state: 'idle_in_transaction', statements: 2, summary: 'INSERT lease_state_entries' });
    expectNoSecret();
  });
});

describeWithMariaDb('knex on mysql2', () => {
  let db: Knex;
  beforeAll(async () => {
    db = knex({ client: 'mysql2', connection: mysql2Options(), pool: { min: 0, max: 2 } });
    await db.raw('CREATE TABLE IF NOT EXISTS lease_state_entries (id int AUTO_INCREMENT PRIMARY KEY, note text, amount int)');
  });
  afterAll(() => db.destroy());

  it('a transaction waiting between statements is idle in transaction', async () => {
    tracing.exporter.reset();
    let leak: ReadableSpan | undefined;
    await db
      .transaction(async (trx) => {
        await trx('lease_state_entries').insert({ note: SECRET, amount: SECRET_NUMBER });
        leak = await leakSpan('tarn');
        throw new Error('roll back');
      })
      .catch(() => undefined);
    expect(leaseState(leak!)).toMatchObject({ state: 'idle_in_transaction', statements: 2, summary: 'INSERT lease_state_entries' });
    expectNoSecret();
  });
});
