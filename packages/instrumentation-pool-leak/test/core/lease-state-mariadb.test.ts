// Lease state the server agrees with (#20), on the real MariaDB through mysql2, MariaDB
// Connector/Node.js and knex: the `pool.lease.state` of the leaked lease is compared with
// `information_schema.innodb_trx`, read over a separate connection (a row whose
// trx_mysql_thread_id is the connection's id = a transaction is open).
//
// InnoDB lists a transaction only once it touched a table (or was started WITH CONSISTENT
// SNAPSHOT), so "no row" alone proves nothing. Every sequence therefore ends with a write to an
// InnoDB table, or has written inside the transaction it leaves open: with autocommit on, that
// final write commits by itself when no transaction is open, and keeps the row listed when one
// is. MySQL and MariaDB know no aborted state: a failed statement leaves the transaction as it was.
import type { Knex } from 'knex';
import type { Connection as Mysql2Observer } from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, expect, it, vi } from 'vitest';
import { requireLibrary } from '../support/in-memory-resources';
import { describeWithMariaDb } from '../support/mariadb';
import { loadMariaDb, loadMariaDbCallback, mariadbOptions } from '../support/mariadb-connector';
import { loadMysql2Promise, mysql2Options, sleep } from '../support/mysql2';
import { reportedLeaseState, runAll } from '../support/lease-state';
import { setupTracing } from '../support/tracing';

const THRESHOLD_MS = 100;
// The leak sweep runs when the test says so (fake interval and lease clock), after the last
// statement of the sequence, however slow the machine is. I/O timers stay real.
vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'performance'] });
const tracing = setupTracing({ leakThresholdMs: THRESHOLD_MS });
const mysql2 = loadMysql2Promise();
const mariadb = loadMariaDb();
const mariadbCallback = loadMariaDbCallback();
const knex = requireLibrary<typeof import('knex').knex>('knex');

const TOUCH = 'INSERT INTO lease_state_touch (id) VALUES (NULL)';

/** The sequences, each on a fresh connection; statements that fail are part of the sequence. */
const SEQUENCES: ReadonlyArray<readonly [string, readonly string[], string]> = [
  ['a START TRANSACTION that failed, then a write', ['START TRANSACTION NONSENSE', TOUCH], 'idle'],
  ['a BEGIN that failed, then a write', ['BEGIN NONSENSE', TOUCH], 'idle'],
  ['START TRANSACTION and a write', ['START TRANSACTION', TOUCH], 'idle_in_transaction'],
  ['START TRANSACTION WITH CONSISTENT SNAPSHOT', ['START TRANSACTION WITH CONSISTENT SNAPSHOT'], 'idle_in_transaction'],
  ['COMMIT, then a write', ['START TRANSACTION', TOUCH, 'COMMIT', TOUCH], 'idle'],
  ['ROLLBACK, then a write', ['BEGIN', TOUCH, 'ROLLBACK', TOUCH], 'idle'],
  ['a statement that failed inside a transaction', ['START TRANSACTION', TOUCH, 'SELECT * FROM lease_state_no_such_table'], 'idle_in_transaction'],
  ['a COMMIT that failed (the transaction stays)', ['START TRANSACTION', TOUCH, 'COMMIT NONSENSE'], 'idle_in_transaction'],
  ['ROLLBACK TO SAVEPOINT', ['START TRANSACTION', TOUCH, 'SAVEPOINT s1', TOUCH, 'ROLLBACK TO SAVEPOINT s1'], 'idle_in_transaction'],
  // The server's status flags win over the statement text in both directions:
  ['DDL inside a transaction (an implicit commit), then a write', ['START TRANSACTION', TOUCH, 'DROP TABLE IF EXISTS lease_state_absent', TOUCH], 'idle'],
  ['autocommit off, then a write (no BEGIN anywhere)', ['SET autocommit = 0', TOUCH], 'idle_in_transaction'],
];

let observer: Mysql2Observer;

/** InnoDB refreshes its information_schema copy of the transaction list at most every 100 ms. */
const INNODB_TRX_CACHE_MS = 100;

/** What InnoDB says of connection `threadId`, as a `pool.lease.state` value. */
async function serverState(threadId: number): Promise<string> {
  // Waits out the cache (twice its period): a copy made before the last statement is not read.
  await sleep(INNODB_TRX_CACHE_MS * 2);
  const [rows] = await observer.query('SELECT COUNT(*) AS open FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ?', [threadId]);
  return Number((rows as [{ open: number | bigint }])[0].open) > 0 ? 'idle_in_transaction' : 'idle';
}

/** The `pool.lease.state` of the one `<library> leak` span this test caused. */
const reportedState = (library: string): Promise<unknown> => reportedLeaseState(tracing, library, THRESHOLD_MS);

describeWithMariaDb('the state agrees with information_schema.innodb_trx', () => {
  beforeAll(async () => {
    // Not from a pool: the observer is never a lease.
    observer = await mysql2.createConnection(mysql2Options());
    await observer.query('CREATE TABLE IF NOT EXISTS lease_state_touch (id int AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB');
  });
  afterAll(async () => {
    await observer.end();
    tracing.instrumentation.disable();
  });
  beforeEach(() => tracing.exporter.reset());

  describeWithMariaDb('mysql2 (status flags of OK packets)', () => {
    const pool = mysql2.createPool({ ...mysql2Options(), connectionLimit: 2 });
    afterAll(() => pool.end());

    it.each(SEQUENCES)('%s', async (_name, statements, expected) => {
      const connection = await pool.getConnection();
      await runAll((statement) => connection.query(statement), statements);
      const reported = await reportedState('mysql2');
      const server = await serverState(connection.threadId);
      // Destroyed, not returned: a connection left inside a transaction must not serve the next test.
      connection.destroy();
      expect({ reported, server }).toEqual({ reported: expected, server: expected });
    });

    it('execute() (prepared statements) and beginTransaction()', async () => {
      const connection = await pool.getConnection();
      await connection.beginTransaction();
      await connection.execute('INSERT INTO lease_state_touch (id) VALUES (?)', [null]);
      const reported = await reportedState('mysql2');
      const server = await serverState(connection.threadId);
      connection.destroy();
      expect({ reported, server }).toEqual({ reported: 'idle_in_transaction', server: 'idle_in_transaction' });
    });
  });

  describeWithMariaDb('mariadb (status flags the connector keeps in info.status)', () => {
    const pool = mariadb.createPool({ ...mariadbOptions(), connectionLimit: 2 });
    afterAll(() => pool.end());

    it.each(SEQUENCES)('%s', async (_name, statements, expected) => {
      const connection = await pool.getConnection();
      await runAll((statement) => connection.query(statement), statements);
      const reported = await reportedState('mariadb');
      const server = await serverState(connection.threadId!);
      await connection.destroy();
      expect({ reported, server }).toEqual({ reported: expected, server: expected });
    });

    it('beginTransaction() and commit()', async () => {
      const connection = await pool.getConnection();
      await connection.beginTransaction();
      await connection.query(TOUCH);
      await connection.commit();
      await connection.query(TOUCH);
      const reported = await reportedState('mariadb');
      const server = await serverState(connection.threadId!);
      await connection.destroy();
      expect({ reported, server }).toEqual({ reported: 'idle', server: 'idle' });
    });

    it('the callback API: a BEGIN that failed, then a write', async () => {
      const callbackPool = mariadbCallback.createPool({ ...mariadbOptions(), connectionLimit: 1 });
      try {
        const connection = await new Promise<import('mariadb/callback').PoolConnection>((resolve, reject) =>
          callbackPool.getConnection((error, conn) => (error ? reject(error) : resolve(conn!))),
        );
        await runAll(
          (statement) => new Promise<void>((resolve, reject) => connection.query(statement, (error) => (error ? reject(error) : resolve()))),
          ['BEGIN NONSENSE', TOUCH],
        );
        const reported = await reportedState('mariadb');
        const server = await serverState(connection.threadId!);
        connection.destroy();
        expect({ reported, server }).toEqual({ reported: 'idle', server: 'idle' });
      } finally {
        await new Promise<void>((resolve) => callbackPool.end(() => resolve()));
      }
    });
  });

  describeWithMariaDb('knex on mysql2 (tarn lends the mysql2 connection)', () => {
    let db: Knex;
    beforeAll(() => {
      db = knex({ client: 'mysql2', connection: mysql2Options(), pool: { min: 0, max: 2 } });
    });
    afterAll(() => db.destroy());

    it.each([
      ['a BEGIN that failed, then a write', ['BEGIN NONSENSE', TOUCH], 'idle'],
      ['START TRANSACTION and a write', ['START TRANSACTION', TOUCH], 'idle_in_transaction'],
    ] as const)('%s', async (_name, statements, expected) => {
      const connection = (await db.client.acquireConnection()) as import('mysql2').Connection;
      await runAll((statement) => connection.promise().query(statement), statements);
      const reported = await reportedState('tarn');
      const server = await serverState(connection.threadId);
      await connection.promise().query('ROLLBACK');
      await db.client.releaseConnection(connection);
      expect({ reported, server }).toEqual({ reported: expected, server: expected });
    });
  });
});
