// Kysely 0.29 on the real PostgreSQL through a pg Pool: `execute()` acquires synchronously,
// 6 Kysely frames below the application, and `db.transaction().execute(cb)` 5 frames below it.
// Kysely's builders are not thenable: the query runs from `execute()`, so the application's
// frames are on the live stack at checkout (#10).
import type { Generated, Kysely } from 'kysely';
import { afterAll, describe } from 'vitest';
import { requireLibrary } from '../../support/in-memory-resources';
import { loadPg, postgresConfig } from '../../support/pg';
import { setupTracing } from '../../support/tracing';
import { ormCallSiteSuite } from './support/call-site-suite';

const tracing = setupTracing();
const pg = loadPg();
const kysely = requireLibrary<typeof import('kysely')>('kysely');

interface Database {
  orm_kysely_users: { id: Generated<number>; name: string };
  orm_kysely_orders: { id: Generated<number>; total: number };
}
type Db = Kysely<Database>;

// --- The application: query functions, pages that use them, one request handler. ---

async function findUsers(db: Db) {
  return await db.selectFrom('orm_kysely_users').selectAll().execute(); // line:findUsers
}
async function findOrders(db: Db) {
  return await db.selectFrom('orm_kysely_orders').selectAll().execute(); // line:findOrders
}
async function usersPage(db: Db) {
  return await findUsers(db); // line:usersPage
}
async function ordersPage(db: Db) {
  return await findOrders(db); // line:ordersPage
}
async function renameUser(db: Db) {
  return await db.transaction().execute(async (trx) => trx.selectFrom('orm_kysely_users').selectAll().execute()); // line:renameUser
}
async function refundOrder(db: Db) {
  return await db.transaction().execute(async (trx) => trx.selectFrom('orm_kysely_orders').selectAll().execute()); // line:refundOrder
}
async function handleRequest(db: Db, work: (db: Db) => Promise<unknown>): Promise<unknown> {
  return await work(db); // line:handleRequest
}
/** Start-up work: the same page as a request, before any request exists. */
async function warmUp(db: Db): Promise<void> {
  await usersPage(db); // line:warmUp
}

afterAll(() => tracing.instrumentation.disable());

describe('Kysely on PostgreSQL (pg Pool)', () => {
  ormCallSiteSuite({
    tracing,
    fileUrl: import.meta.url,
    checkout: 'pg-pool checkout',
    app: { usersPage, ordersPage, renameUser, refundOrder, handleRequest, warmUp },
    // Measured: 6 (PostgresDriver.acquireConnection … SelectQueryBuilder.execute).
    minLibraryFrames: 6,
    async open() {
      const db: Db = new kysely.Kysely<Database>({
        dialect: new kysely.PostgresDialect({ pool: new pg.Pool({ ...postgresConfig(), max: 2 }) }),
      });
      await db.schema
        .createTable('orm_kysely_users')
        .addColumn('id', 'serial', (column) => column.primaryKey())
        .addColumn('name', 'text')
        .execute();
      await db.schema
        .createTable('orm_kysely_orders')
        .addColumn('id', 'serial', (column) => column.primaryKey())
        .addColumn('total', 'integer')
        .execute();
      await db.insertInto('orm_kysely_users').values({ name: 'ada' }).execute();
      await db.insertInto('orm_kysely_orders').values({ total: 42 }).execute();
      return db;
    },
    async close(db) {
      await db.schema.dropTable('orm_kysely_users').execute();
      await db.schema.dropTable('orm_kysely_orders').execute();
      // Ends the pg Pool too.
      await db.destroy();
    },
  });
});
