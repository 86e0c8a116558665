// TypeORM 1.x on the real PostgreSQL (pg Pool) and the real MariaDB (mysql2 Pool): the checkout
// happens 11 TypeORM frames below the application's `repository.find()`, and a transaction
// acquires after an `await` inside TypeORM (the application is then only on the async part of
// the stack). Two application functions running the same kind of query, the same function at
// start-up and in a request, and transactions must each name their own frames (#10).
import type { DataSource, DataSourceOptions, EntitySchema } from 'typeorm';
import { afterAll, describe } from 'vitest';
import { requireLibrary } from '../../support/in-memory-resources';
import { describeWithMariaDb } from '../../support/mariadb';
import { loadMysql2, mysql2Options } from '../../support/mysql2';
import { loadPg, postgresConfig } from '../../support/pg';
import { setupTracing } from '../../support/tracing';
import { ormCallSiteSuite } from './support/call-site-suite';

const tracing = setupTracing();
// Loaded before TypeORM, which requires the drivers itself, so that both are already patched.
loadPg();
loadMysql2();
const typeorm = requireLibrary<typeof import('typeorm')>('typeorm');

interface User {
  id: number;
  name: string;
}
interface Order {
  id: number;
  total: number;
}

const UserEntity: EntitySchema<User> = new typeorm.EntitySchema<User>({
  name: 'OrmTestUser',
  tableName: 'orm_typeorm_users',
  columns: { id: { type: Number, primary: true, generated: true }, name: { type: String } },
});
const OrderEntity: EntitySchema<Order> = new typeorm.EntitySchema<Order>({
  name: 'OrmTestOrder',
  tableName: 'orm_typeorm_orders',
  columns: { id: { type: Number, primary: true, generated: true }, total: { type: Number } },
});

// --- The application: repository functions, pages that use them, one request handler. ---

async function findUsers(db: DataSource): Promise<User[]> {
  return await db.getRepository(UserEntity).find(); // line:findUsers
}
async function findOrders(db: DataSource): Promise<Order[]> {
  return await db.getRepository(OrderEntity).find(); // line:findOrders
}
async function usersPage(db: DataSource): Promise<User[]> {
  return await findUsers(db); // line:usersPage
}
async function ordersPage(db: DataSource): Promise<Order[]> {
  return await findOrders(db); // line:ordersPage
}
async function renameUser(db: DataSource): Promise<User[]> {
  return await db.transaction(async (manager) => manager.getRepository(UserEntity).find()); // line:renameUser
}
async function refundOrder(db: DataSource): Promise<Order[]> {
  return await db.transaction(async (manager) => manager.getRepository(OrderEntity).find()); // line:refundOrder
}
async function handleRequest(db: DataSource, work: (db: DataSource) => Promise<unknown>): Promise<unknown> {
  return await work(db); // line:handleRequest
}
/** Start-up work: the same page as a request, before any request exists. */
async function warmUp(db: DataSource): Promise<void> {
  await usersPage(db); // line:warmUp
}

// --- Service style (#20): plain functions return the ORM's promise, a controller awaits it. ---

function getUsers(db: DataSource): Promise<User[]> {
  return db.getRepository(UserEntity).find(); // line:getUsers
}
function transferFunds(db: DataSource): Promise<Order[]> {
  return db.transaction((manager) => manager.getRepository(OrderEntity).find()); // line:transferFunds
}
async function controller(db: DataSource, service: (db: DataSource) => PromiseLike<unknown>): Promise<unknown> {
  return await service(db); // line:controller
}
/** A query runner's transaction: started after awaits inside TypeORM. */
function startTransfer(db: DataSource): Promise<void> {
  const runner = db.createQueryRunner();
  return runner.startTransaction().then(() => runner.rollbackTransaction()).finally(() => runner.release()); // line:startTransfer
}
function rawCount(db: DataSource): Promise<unknown> {
  return db.manager.query('SELECT count(*) AS n FROM orm_typeorm_users'); // line:rawCount
}
const SERVICES = { getUsers, transferFunds, controller };

const APP = { usersPage, ordersPage, renameUser, refundOrder, handleRequest, warmUp };

afterAll(() => tracing.instrumentation.disable());

/** A data source with both tables created and one row in each. */
async function openDataSource(options: DataSourceOptions): Promise<DataSource> {
  const db = new typeorm.DataSource({ ...options, entities: [UserEntity, OrderEntity], synchronize: true });
  await db.initialize();
  await db.getRepository(UserEntity).save({ name: 'ada' });
  await db.getRepository(OrderEntity).save({ total: 42 });
  return db;
}

async function closeDataSource(db: DataSource): Promise<void> {
  await db.query('DROP TABLE orm_typeorm_users');
  await db.query('DROP TABLE orm_typeorm_orders');
  await db.destroy();
}

describe("TypeORM on PostgreSQL (pg Pool): a query runner's transaction and the manager's raw query", () => {
  ormCallSiteSuite({
    tracing,
    fileUrl: import.meta.url,
    checkout: 'pg-pool checkout',
    app: APP,
    minLibraryFrames: 8,
    services: { getUsers: rawCount, transferFunds: startTransfer, controller },
    open() {
      const { host, port, user, password, database } = postgresConfig();
      return openDataSource({ type: 'postgres', host, port, username: user, password, database });
    },
    close: closeDataSource,
  });
});

describe('TypeORM on PostgreSQL (pg Pool)', () => {
  ormCallSiteSuite({
    tracing,
    fileUrl: import.meta.url,
    checkout: 'pg-pool checkout',
    app: APP,
    // Measured: 11 (PostgresDriver … Repository.find), the application on the synchronous stack.
    minLibraryFrames: 8,
    services: SERVICES,
    open() {
      const { host, port, user, password, database } = postgresConfig();
      return openDataSource({ type: 'postgres', host, port, username: user, password, database });
    },
    close: closeDataSource,
  });
});

describeWithMariaDb('TypeORM on MariaDB (mysql2 Pool)', () => {
  ormCallSiteSuite({
    tracing,
    fileUrl: import.meta.url,
    checkout: 'mysql2 checkout',
    app: APP,
    // Measured: 11 (MysqlDriver … Repository.find), the application on the synchronous stack.
    minLibraryFrames: 8,
    services: SERVICES,
    open() {
      const { host, port, user, password, database } = mysql2Options();
      return openDataSource({ type: 'mysql', host, port, username: user, password, database });
    },
    close: closeDataSource,
  });
});
