// Objection 3 on knex on the real PostgreSQL: `User.query()` builds in the application's frame,
// but the query runs from the builder's `then()` → `execute()`, which builds knex's query only
// after awaits inside Objection, so at the tarn checkout no application frame is on the stack.
// The awaited form and the service form (a plain function returns the builder, a controller
// awaits it) must both name the application's function and line (#10, #20).
import type { Knex } from 'knex';
import { afterAll, describe } from 'vitest';
import { requireLibrary } from '../../support/in-memory-resources';
import { loadPg, postgresConfig } from '../../support/pg';
import { setupTracing } from '../../support/tracing';
import { ormCallSiteSuite } from './support/call-site-suite';

const tracing = setupTracing();
// Loaded after the instrumentation, so that knex (and tarn) and Objection are patched.
loadPg();
const knex = requireLibrary<typeof import('knex').knex>('knex');
const { Model } = requireLibrary<typeof import('objection')>('objection');

class User extends Model {
  static override tableName = 'orm_objection_users';
  id!: number;
  name!: string;
}
class Order extends Model {
  static override tableName = 'orm_objection_orders';
  id!: number;
  total!: number;
}
type Db = Knex;
/** Models bound to the suite's knex instance. */
const bound = (db: Db) => ({ users: User.bindKnex(db), orders: Order.bindKnex(db) });

// --- The application: repository functions, pages that use them, one request handler. ---

async function findUsers(db: Db) {
  return await bound(db).users.query().where('name', 'ada'); // line:findUsers
}
async function findOrders(db: Db) {
  return await bound(db).orders.query().where('total', '>', 0); // line:findOrders
}
async function usersPage(db: Db) {
  return await findUsers(db); // line:usersPage
}
async function ordersPage(db: Db) {
  return await findOrders(db); // line:ordersPage
}
async function renameUser(db: Db) {
  return await bound(db).users.transaction(async (trx) => bound(db).users.query(trx).patch({ name: 'ada' }).where('name', 'ada')); // line:renameUser
}
async function refundOrder(db: Db) {
  return await bound(db).orders.transaction(async (trx) => bound(db).orders.query(trx).where('total', 42)); // line:refundOrder
}
async function handleRequest(db: Db, work: (db: Db) => Promise<unknown>): Promise<unknown> {
  return await work(db); // line:handleRequest
}
/** Start-up work: the same page as a request, before any request exists. */
async function warmUp(db: Db): Promise<void> {
  await usersPage(db); // line:warmUp
}

// --- Service style (#20): plain functions return the ORM's promise, a controller awaits it. ---

function getUsers(db: Db) {
  return bound(db).users.query().where('name', 'ada').orderBy('id'); // line:getUsers
}
function transferFunds(db: Db) {
  return bound(db).orders.transaction(async (trx) => bound(db).orders.query(trx).where('total', 42)); // line:transferFunds
}
/** An instance's own query: `$query()` builds through the static `query()`. */
function reloadUser(db: Db) {
  return bound(db).users.fromJson({ id: 1, name: 'ada' }).$query().select('name'); // line:reloadUser
}
/** `resultSize()` counts through a clone of the builder. */
function countUsers(db: Db) {
  return bound(db).users.query().resultSize(); // line:countUsers
}
async function controller(db: Db, service: (db: Db) => PromiseLike<unknown>): Promise<unknown> {
  return await service(db); // line:controller
}
async function directCheckout(db: Db): Promise<void> {
  await db.raw('select 1'); // line:directCheckout
}

afterAll(() => tracing.instrumentation.disable());

describe('Objection on knex on PostgreSQL (tarn pool)', () => {
  ormCallSiteSuite<Db>({
    tracing,
    fileUrl: import.meta.url,
    checkout: 'tarn checkout',
    app: { usersPage, ordersPage, renameUser, refundOrder, handleRequest, warmUp },
    services: { getUsers, transferFunds, controller, directCheckout, others: [reloadUser, countUsers] },
    // The call site is captured where the application called `Model.query()`.
    minLibraryFrames: 0,
    async open() {
      const db = knex({ client: 'pg', connection: postgresConfig(), pool: { min: 0, max: 2 } });
      await db.raw('create table orm_objection_users (id serial primary key, name text not null)');
      await db.raw('create table orm_objection_orders (id serial primary key, total integer not null)');
      await db.raw("insert into orm_objection_users (name) values ('ada')");
      await db.raw('insert into orm_objection_orders (total) values (42)');
      return db;
    },
    async close(db) {
      await db.raw('drop table orm_objection_users');
      await db.raw('drop table orm_objection_orders');
      await db.destroy();
    },
  });
});
