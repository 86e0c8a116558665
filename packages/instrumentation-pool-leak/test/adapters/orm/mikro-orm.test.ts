// MikroORM 7 on the real PostgreSQL: MikroORM runs its SQL through Kysely over a pg Pool, and
// acquires only after several `await`s inside the ORM (EntityManager.find → driver.find →
// QueryBuilder.execute → Connection.execute): at checkout the synchronous stack holds 9 library
// frames and no application frame, and a service function that returns `em.find()` without
// awaiting it is on no stack at all. The entity manager's entry points carry the call site (#10, #20).
import type { EntitySchema, MikroORM } from '@mikro-orm/postgresql';
import { afterAll, describe } from 'vitest';
import { registerLoaderHook } from '../../../src/register/loader-hook';
import { loadPg, postgresConfig } from '../../support/pg';
import { setupTracing } from '../../support/tracing';
import { ormCallSiteSuite } from './support/call-site-suite';

const tracing = setupTracing();
// MikroORM is ESM-only: its entry points are patched through the ES module loader hook, as
// the register entry installs it; pg, which it imports itself, is loaded (patched) first.
registerLoaderHook(['@mikro-orm/core', '@mikro-orm/sql']);
loadPg();
const mikro = await import('@mikro-orm/postgresql');

interface User {
  id: number;
  name: string;
}
interface Order {
  id: number;
  total: number;
}

const UserSchema: EntitySchema<User> = new mikro.EntitySchema<User>({
  name: 'OrmTestUser',
  tableName: 'orm_mikro_users',
  properties: { id: { type: 'number', primary: true }, name: { type: 'string' } },
});
const OrderSchema: EntitySchema<Order> = new mikro.EntitySchema<Order>({
  name: 'OrmTestOrder',
  tableName: 'orm_mikro_orders',
  properties: { id: { type: 'number', primary: true }, total: { type: 'number' } },
});

// --- The application: repository functions, pages that use them, one request handler. ---

async function findUsers(orm: MikroORM) {
  return await orm.em.fork().find(UserSchema, {}); // line:findUsers
}
async function findOrders(orm: MikroORM) {
  return await orm.em.fork().find(OrderSchema, {}); // line:findOrders
}
async function usersPage(orm: MikroORM) {
  return await findUsers(orm); // line:usersPage
}
async function ordersPage(orm: MikroORM) {
  return await findOrders(orm); // line:ordersPage
}
async function renameUser(orm: MikroORM) {
  return await orm.em.fork().transactional(async (em) => em.find(UserSchema, {})); // line:renameUser
}
async function refundOrder(orm: MikroORM) {
  return await orm.em.fork().transactional(async (em) => em.find(OrderSchema, {})); // line:refundOrder
}
async function handleRequest(orm: MikroORM, work: (orm: MikroORM) => Promise<unknown>): Promise<unknown> {
  return await work(orm); // line:handleRequest
}
/** Start-up work: the same page as a request, before any request exists. */
async function warmUp(orm: MikroORM): Promise<void> {
  await usersPage(orm); // line:warmUp
}

// --- Service style (#20): plain functions return the ORM's promise, a controller awaits it. ---

function getUsers(orm: MikroORM) {
  return orm.em.fork().find(UserSchema, {}); // line:getUsers
}
function transferFunds(orm: MikroORM) {
  return orm.em.fork().transactional((em) => em.find(OrderSchema, {})); // line:transferFunds
}
function addUser(orm: MikroORM) {
  const em = orm.em.fork();
  em.persist(em.create(UserSchema, { name: 'linus' }));
  return em.flush(); // line:addUser
}
async function controller(orm: MikroORM, service: (orm: MikroORM) => PromiseLike<unknown>): Promise<unknown> {
  return await service(orm); // line:controller
}
async function directCheckout(orm: MikroORM): Promise<void> {
  const kysely = orm.em.getConnection().getClient();
  await kysely.connection().execute(async (connection) => connection.selectNoFrom((eb) => eb.lit(1).as('one')).execute()); // line:directCheckout
}

afterAll(() => tracing.instrumentation.disable());

describe('MikroORM 7 on PostgreSQL (pg Pool under Kysely)', () => {
  ormCallSiteSuite<MikroORM>({
    tracing,
    fileUrl: import.meta.url,
    checkout: 'pg-pool checkout',
    app: { usersPage, ordersPage, renameUser, refundOrder, handleRequest, warmUp },
    // The stack is captured where the application called the entity manager (#20), not at the
    // checkout 13 frames further down: no library frame above the application's.
    minLibraryFrames: 0,
    services: { getUsers, transferFunds, controller, directCheckout, others: [addUser] },
    async open() {
      const { host, port, user, password, database } = postgresConfig();
      const orm = await mikro.MikroORM.init({
        entities: [UserSchema, OrderSchema],
        host,
        port,
        user,
        password,
        dbName: database,
        pool: { max: 2 },
      });
      const connection = orm.em.getConnection();
      await connection.execute('CREATE TABLE orm_mikro_users (id serial PRIMARY KEY, name text NOT NULL)');
      await connection.execute('CREATE TABLE orm_mikro_orders (id serial PRIMARY KEY, total integer NOT NULL)');
      await connection.execute("INSERT INTO orm_mikro_users (name) VALUES ('ada')");
      await connection.execute('INSERT INTO orm_mikro_orders (total) VALUES (42)');
      return orm;
    },
    async close(orm) {
      const connection = orm.em.getConnection();
      await connection.execute('DROP TABLE orm_mikro_users');
      await connection.execute('DROP TABLE orm_mikro_orders');
      await orm.close(true);
    },
  });
});
