// Sequelize 6 and 7 on the real PostgreSQL and MariaDB (mysql and mariadb dialects): Sequelize
// checks out after awaits inside its own code (`findAll` → `query` → retry → `getConnection`),
// yet every checkout must name the application's function and line (#12, scenarios of #10).
import { afterAll, describe } from 'vitest';
import { openSequelize, sequelizeTargets, targetName, type AnyModel, type AnySequelize } from '../../support/sequelize';
import { setupTracing } from '../../support/tracing';
import { ormCallSiteSuite } from './support/call-site-suite';

const tracing = setupTracing();

interface Db {
  readonly sequelize: AnySequelize;
  readonly users: AnyModel;
  readonly orders: AnyModel;
}

// --- The application: repository functions, pages that use them, one request handler. ---

async function findUsers(db: Db): Promise<unknown[]> {
  return await db.users.findAll(); // line:findUsers
}
async function findOrders(db: Db): Promise<unknown[]> {
  return await db.orders.findAll(); // line:findOrders
}
async function usersPage(db: Db): Promise<unknown[]> {
  return await findUsers(db); // line:usersPage
}
async function ordersPage(db: Db): Promise<unknown[]> {
  return await findOrders(db); // line:ordersPage
}
async function renameUser(db: Db): Promise<unknown> {
  return await db.sequelize.transaction(async (transaction) => db.users.create({ name: 'grace' }, { transaction })); // line:renameUser
}
async function refundOrder(db: Db): Promise<unknown> {
  return await db.sequelize.transaction(async (transaction) => db.orders.findAll({ transaction })); // line:refundOrder
}
async function handleRequest(db: Db, work: (db: Db) => Promise<unknown>): Promise<unknown> {
  return await work(db); // line:handleRequest
}
/** Start-up work: the same page as a request, before any request exists. */
async function warmUp(db: Db): Promise<void> {
  await usersPage(db); // line:warmUp
}

// --- Service style (#20): plain functions return the ORM's promise, a controller awaits it. ---

function getUsers(db: Db): Promise<unknown[]> {
  return db.users.findAll(); // line:getUsers
}
function transferFunds(db: Db): Promise<unknown> {
  return db.sequelize.transaction(async (transaction) => db.orders.findAll({ transaction })); // line:transferFunds
}
async function controller(db: Db, service: (db: Db) => PromiseLike<unknown>): Promise<unknown> {
  return await service(db); // line:controller
}
async function directCheckout(db: Db): Promise<void> {
  const pool = db.sequelize.pool?.write ?? db.sequelize.connectionManager!.pool;
  pool.release(await pool.acquire()); // line:directCheckout
}
const SERVICES = { getUsers, transferFunds, controller, directCheckout };

const APP = { usersPage, ordersPage, renameUser, refundOrder, handleRequest, warmUp };

afterAll(() => tracing.instrumentation.disable());

for (const target of sequelizeTargets()) {
  describe(`${targetName(target)}: call sites through model methods and transactions`, () => {
    ormCallSiteSuite<Db>({
      tracing,
      fileUrl: import.meta.url,
      checkout: 'sequelize-pool checkout',
      app: APP,
      minLibraryFrames: 0,
      services: SERVICES,
      async open() {
        const sequelize = openSequelize(target);
        const suffix = `${target.version}_${target.dialect}`;
        const users = sequelize.define('User', { name: 'VARCHAR(255)' }, { tableName: `orm_sq_users_${suffix}`, timestamps: false });
        const orders = sequelize.define('Order', { total: 'INTEGER' }, { tableName: `orm_sq_orders_${suffix}`, timestamps: false });
        await sequelize.sync({ force: true });
        await users.create({ name: 'ada' });
        await orders.create({ total: 42 });
        return { sequelize, users, orders };
      },
      async close({ sequelize, users, orders }) {
        await users.drop();
        await orders.drop();
        await sequelize.close();
      },
    });
  });
}
