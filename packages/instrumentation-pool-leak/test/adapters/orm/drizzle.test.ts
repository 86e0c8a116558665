// Drizzle 0.45 on node-postgres (a pg Pool, the suite's PostgreSQL) and on mysql2 (the suite's
// MariaDB): `await db.select().from(t)` runs the query from the builder's `then()`, a promise job
// after the application's frame left the stack, where every frame is Drizzle's or the pool's.
// The call-site hook carries the line that awaited the query to the pool's checkout (#10).
import { isPatchedByPoolLeak } from '../../../src/adapters/kit/patcher';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LeaseCore } from '../../../src/core/lease-core';
import { ThenReadHooks } from '../../../src/adapters/kit/call-site-hooks';
import { requireLibrary } from '../../support/in-memory-resources';
import { describeWithMariaDb } from '../../support/mariadb';
import { loadMysql2Promise, mysql2Options } from '../../support/mysql2';
import { loadPg, postgresConfig } from '../../support/pg';
import { lineOf } from '../../support/source-lines';
import { expectCheckedIn } from '../../support/spans';
import { setupTracing } from '../../support/tracing';
import { postgresEnv, runNode } from '../../../../../test/support/node-process';
import { callSiteAssertions, onlyChildNamed } from './support/call-site';

const tracing = setupTracing();
// The drivers first, so that they are patched before Drizzle requires them.
const pg = loadPg();
const mysql = loadMysql2Promise();
const drizzleOrm = requireLibrary<typeof import('drizzle-orm')>('drizzle-orm');
const pgCore = requireLibrary<typeof import('drizzle-orm/pg-core')>('drizzle-orm/pg-core');
const mysqlCore = requireLibrary<typeof import('drizzle-orm/mysql-core')>('drizzle-orm/mysql-core');
const nodePostgres = requireLibrary<typeof import('drizzle-orm/node-postgres')>('drizzle-orm/node-postgres');
const drizzleMysql2 = requireLibrary<typeof import('drizzle-orm/mysql2')>('drizzle-orm/mysql2');
const { expectCallSite } = callSiteAssertions(import.meta.url);
const { eq, sql } = drizzleOrm;

const spans = (): ReadableSpan[] => tracing.exporter.getFinishedSpans();

afterAll(() => tracing.instrumentation.disable());
beforeEach(() => tracing.exporter.reset());

describe('node-postgres (pg Pool)', () => {
  const CHECKOUT = 'pg-pool checkout';
  const users = pgCore.pgTable('drizzle_carrier_users', {
    id: pgCore.serial('id').primaryKey(),
    name: pgCore.text('name').notNull(),
  });
  const schema = { users };
  const pool = new pg.Pool({ ...postgresConfig(), max: 3 });
  const db = nodePostgres.drizzle({ client: pool, schema });

  beforeAll(async () => {
    await pool.query('drop table if exists drizzle_carrier_users; create table drizzle_carrier_users (id serial primary key, name text not null)');
    await pool.query("insert into drizzle_carrier_users (name) values ('ada'), ('grace')");
  });
  afterAll(async () => {
    await pool.query('drop table drizzle_carrier_users');
    await pool.end();
  });

  // --- The application: two repository functions running the same kind of query, and more. ---
  async function findAda() {
    return await db.select().from(users).where(eq(users.name, 'ada')); // line:pg-ada
  }
  async function findGrace() {
    return await db.select().from(users).where(eq(users.name, 'grace')); // line:pg-grace
  }
  async function renameAndBack() {
    await db.insert(users).values({ name: 'linus' }); // line:pg-insert
    await db.update(users).set({ name: 'ken' }).where(eq(users.name, 'linus')); // line:pg-update
    await db.delete(users).where(eq(users.name, 'ken')); // line:pg-delete
  }
  async function countByRaw() {
    return await db.execute(sql`select count(*)::int as n from drizzle_carrier_users`); // line:pg-execute
  }
  async function findWithRelationalApi() {
    return await db.query.users.findMany({ where: eq(users.name, 'ada') }); // line:pg-relational
  }
  /** Built at start-up (when this file loads), awaited later by requests. */
  const adaQuery = db.select().from(users).where(eq(users.name, 'ada'));
  function findAdaLater() {
    return db.select().from(users).where(eq(users.name, 'ada')); // line:pg-built-later
  }
  async function transferInTransaction() {
    return await db.transaction(async (tx) => { // line:pg-transaction
      await tx.select().from(users);
      return tx.update(users).set({ name: 'ada' }).where(eq(users.name, 'ada'));
    });
  }

  it('a query awaited directly: code.* name the function and line that awaited it', async () => {
    const rows = await tracing.inRequest('GET /ada', findAda);
    expect(rows.map((row) => row.name)).toEqual(['ada']);
    const span = onlyChildNamed(spans(), CHECKOUT, 'GET /ada');
    expectCheckedIn(span);
    expectCallSite(span, { functionName: 'findAda', marker: 'pg-ada' });
    expect(String(span.attributes['code.stacktrace'])).toContain('findAda (');
  });

  it('two application functions running the same kind of query: each names its own function and line', async () => {
    await tracing.inRequest('GET /ada', findAda);
    await tracing.inRequest('GET /grace', findGrace);
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /ada'), { functionName: 'findAda', marker: 'pg-ada' });
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /grace'), { functionName: 'findGrace', marker: 'pg-grace' });
  });

  it('insert, update and delete: each checkout names its own line', async () => {
    await tracing.inRequest('POST /rename', renameAndBack);
    const checkouts = spans().filter((span) => span.name === CHECKOUT);
    expect(checkouts.map((span) => span.attributes['code.function.name'])).toEqual(['renameAndBack', 'renameAndBack', 'renameAndBack']);
    expect(checkouts.map((span) => span.attributes['code.line.number'])).toEqual(
      ['pg-insert', 'pg-update', 'pg-delete'].map((marker) => lineOf(import.meta.url, marker)),
    );
  });

  it('db.execute(sql) and the relational db.query.x.findMany(): the application line', async () => {
    const counted = await tracing.inRequest('GET /count', countByRaw);
    expect(counted.rows).toEqual([{ n: 2 }]);
    const found = await tracing.inRequest('GET /relational', findWithRelationalApi);
    expect(found.map((row) => row.name)).toEqual(['ada']);
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /count'), { functionName: 'countByRaw', marker: 'pg-execute' });
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /relational'), { functionName: 'findWithRelationalApi', marker: 'pg-relational' });
  });

  it('a query built by a plain function and returned from an async one: the function that built it', async () => {
    async function handleLater() {
      return findAdaLater(); // line:pg-returned-await
    }
    expect((await tracing.inRequest('GET /later', handleLater)).map((row) => row.name)).toEqual(['ada']);
    // Resolving handleLater's promise with it reads its then() in the run that built it (#20).
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /later'), { functionName: 'findAdaLater', marker: 'pg-built-later' });
  });

  // --- Service style (#20): plain functions return the query, an async controller awaits it. ---
  function getAda() {
    return db.select().from(users).where(eq(users.name, 'ada')); // line:pg-service-select
  }
  function addLinus() {
    return db.insert(users).values({ name: 'linus' }); // line:pg-service-insert
  }
  function renameLinus() {
    return db.update(users).set({ name: 'ken' }).where(eq(users.name, 'linus')); // line:pg-service-update
  }
  function removeKen() {
    return db.delete(users).where(eq(users.name, 'ken')); // line:pg-service-delete
  }
  function countRaw() {
    return db.execute(sql`select count(*)::int as n from drizzle_carrier_users`); // line:pg-service-execute
  }
  function findRelational() {
    return db.query.users.findFirst({ where: eq(users.name, 'ada') }); // line:pg-service-relational
  }
  function countUsers() {
    return db.$count(users); // line:pg-service-count
  }
  function transferFunds() {
    return db.transaction((tx) => tx.select().from(users)); // line:pg-service-transaction
  }
  async function controller(service: () => PromiseLike<unknown>) {
    return await service(); // line:pg-controller
  }
  async function directCheckout() {
    const client = await pool.connect(); // line:pg-direct
    client.release();
  }

  it('service style: each plain function that returns a query names itself and its line, not the awaiting controller', async () => {
    const services = [
      [getAda, 'pg-service-select'],
      [addLinus, 'pg-service-insert'],
      [renameLinus, 'pg-service-update'],
      [removeKen, 'pg-service-delete'],
      [countRaw, 'pg-service-execute'],
      [findRelational, 'pg-service-relational'],
      [countUsers, 'pg-service-count'],
      [transferFunds, 'pg-service-transaction'],
    ] as const;
    for (const [service, marker] of services) {
      tracing.exporter.reset();
      await tracing.inRequest(`RUN ${service.name}`, () => controller(service));
      const span = onlyChildNamed(spans(), CHECKOUT, `RUN ${service.name}`);
      expectCheckedIn(span);
      expectCallSite(span, { functionName: service.name, marker });
      expect(String(span.attributes['pool.call_path'])).toContain(`${service.name} (`);
      expect(String(span.attributes['pool.call_path'])).toContain(' ← controller (');
    }
  });

  it('one capture per query, at its entry point: the builder steps and the await add none', async () => {
    // Every capture, the carrier's and the hooks', goes through the lease core's captureCallSite.
    const core = (tracing.instrumentation as unknown as { core: LeaseCore }).core;
    const captures = vi.spyOn(core, 'captureCallSite');
    try {
      await controller(getAda);
      expect(captures).toHaveBeenCalledTimes(1);
    } finally {
      captures.mockRestore();
    }
  });

  it('an entry-point capture stays with its query: a later checkout of another function names that function', async () => {
    await tracing.inRequest('GET /then-direct', async () => {
      await controller(getAda);
      await directCheckout();
    });
    const checkouts = spans().filter((span) => span.name === CHECKOUT);
    expect(checkouts.map((span) => span.attributes['code.function.name'])).toEqual(['getAda', 'directCheckout']);
    expectCallSite(checkouts[1]!, { functionName: 'directCheckout', marker: 'pg-direct' });
    expect(String(checkouts[1]!.attributes['code.stacktrace'])).not.toContain('getAda (');
  });

  it('a query built at start-up and awaited from a request: the request line that awaited it', async () => {
    // Drizzle queries run again on every await; a query built in an earlier run (here: when the
    // test file loaded) is started where it is awaited.
    async function handleAda() {
      return await adaQuery; // line:pg-startup-await
    }
    await tracing.inRequest('GET /startup', handleAda);
    await tracing.inRequest('GET /startup again', handleAda);
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /startup'), { functionName: 'handleAda', marker: 'pg-startup-await' });
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /startup again'), { functionName: 'handleAda', marker: 'pg-startup-await' });
  });

  it('db.transaction(cb): one checkout, naming the line that opened the transaction', async () => {
    await tracing.inRequest('POST /transfer', transferInTransaction);
    const span = onlyChildNamed(spans(), CHECKOUT, 'POST /transfer');
    expectCheckedIn(span);
    expectCallSite(span, { functionName: 'transferInTransaction', marker: 'pg-transaction' });
  });

  it('a then() handler that checks out by itself: that checkout names the handler, not the query', async () => {
    function chainToPool() {
      return db
        .select()
        .from(users)
        .then(async () => {
          const client = await pool.connect(); // line:pg-handler-connect
          client.release();
          return 'done';
        });
    }
    expect(await tracing.inRequest('GET /chain', chainToPool)).toBe('done');
    const checkouts = spans().filter((span) => span.name === CHECKOUT);
    expect(checkouts).toHaveLength(2);
    expect(checkouts.map((span) => span.attributes['code.line.number'])).toContain(lineOf(import.meta.url, 'pg-handler-connect'));
  });

  it('results, errors and rejections reach the application unchanged', async () => {
    const failing = db.execute(sql`select * from drizzle_carrier_missing_table`);
    const error = await failing.then(
      () => undefined,
      (failure: unknown) => failure as Error & { cause?: { code?: string } },
    );
    expect(error?.cause?.code ?? (error as { code?: string } | undefined)?.code).toBe('42P01');
    expect(await db.select().from(users).where(eq(users.name, 'nobody'))).toEqual([]);
    const caught = await db.execute(sql`select 1/0`).catch((failure: unknown) => failure);
    expect(caught).toBeInstanceOf(Error);
  });
});

describeWithMariaDb('mysql2 (promise pool on MariaDB)', () => {
  const CHECKOUT = 'mysql2 checkout';
  const items = mysqlCore.mysqlTable('drizzle_carrier_items', {
    id: mysqlCore.int('id').primaryKey().autoincrement(),
    label: mysqlCore.varchar('label', { length: 40 }).notNull(),
  });
  const connect = () => {
    const client = mysql.createPool({ ...mysql2Options(), connectionLimit: 2 });
    return { pool: client, db: drizzleMysql2.drizzle({ client }) };
  };
  let pool: ReturnType<typeof connect>['pool'];
  let db: ReturnType<typeof connect>['db'];

  beforeAll(async () => {
    ({ pool, db } = connect());
    await pool.query('drop table if exists drizzle_carrier_items');
    await pool.query('create table drizzle_carrier_items (id int primary key auto_increment, label varchar(40) not null)');
    await pool.query("insert into drizzle_carrier_items (label) values ('bolt'), ('nut')");
  });
  afterAll(async () => {
    await pool.query('drop table drizzle_carrier_items');
    await pool.end();
  });

  async function findBolts() {
    return await db.select().from(items).where(eq(items.label, 'bolt')); // line:my-bolt
  }
  async function findNuts() {
    return await db.select().from(items).where(eq(items.label, 'nut')); // line:my-nut
  }
  async function relabelInTransaction() {
    await db.transaction(async (tx) => { // line:my-transaction
      await tx.update(items).set({ label: 'bolt' }).where(eq(items.label, 'bolt'));
    });
  }

  function getBolts() {
    return db.select().from(items).where(eq(items.label, 'bolt')); // line:my-service-select
  }
  function addWasher() {
    return db.insert(items).values({ label: 'washer' }); // line:my-service-insert
  }
  async function controller(service: () => PromiseLike<unknown>) {
    return await service(); // line:my-controller
  }

  it('service style: a plain function returns the query, an async controller awaits it: the service function and its line', async () => {
    for (const [service, marker] of [[getBolts, 'my-service-select'], [addWasher, 'my-service-insert']] as const) {
      tracing.exporter.reset();
      await tracing.inRequest(`RUN ${service.name}`, () => controller(service));
      expectCallSite(onlyChildNamed(spans(), CHECKOUT, `RUN ${service.name}`), { functionName: service.name, marker });
    }
  });

  it('two application functions awaiting the same kind of query: each names its own function and line', async () => {
    expect((await tracing.inRequest('GET /bolts', findBolts)).map((row) => row.label)).toEqual(['bolt']);
    expect((await tracing.inRequest('GET /nuts', findNuts)).map((row) => row.label)).toEqual(['nut']);
    const bolts = onlyChildNamed(spans(), CHECKOUT, 'GET /bolts');
    expectCheckedIn(bolts);
    expectCallSite(bolts, { functionName: 'findBolts', marker: 'my-bolt' });
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /nuts'), { functionName: 'findNuts', marker: 'my-nut' });
  });

  it('db.transaction(cb): one checkout, naming the line that opened the transaction', async () => {
    await tracing.inRequest('POST /relabel', relabelInTransaction);
    const span = onlyChildNamed(spans(), CHECKOUT, 'POST /relabel');
    expectCheckedIn(span);
    expectCallSite(span, { functionName: 'relabelInTransaction', marker: 'my-transaction' });
  });
});

describe('an ES-module application (import, through the loader hook)', () => {
  it('Drizzle\'s ES-module build is hooked too: the checkout names the function that awaited the query', async () => {
    // The built package, loaded by name as an application would (npm run build first).
    const run = await runNode(
      ['--import', './test/fixtures/esm-setup.mjs', 'packages/instrumentation-pool-leak/test/adapters/orm/fixtures/drizzle-esm-app.mjs'],
      { timeoutMs: 20_000, env: postgresEnv() },
    );
    expect(run.code, run.context).toBe(0);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as {
      drizzleEntry?: string;
      spans: { name: string; attributes: Record<string, unknown> }[];
    };
    // The ES-module build (`.js`; the CommonJS one is `.cjs`), as the loader hook serves it.
    expect(report.drizzleEntry, run.context).toMatch(/\/drizzle-orm\/node-postgres\/index\.js(\?.*)?$/);
    const checkouts = report.spans.filter((span) => span.name === 'pg-pool checkout' && span.attributes['code.function.name'] === 'readNotes');
    expect(checkouts, run.context).toHaveLength(1);
    expect(String(checkouts[0]!.attributes['code.file.path'])).toMatch(/drizzle-esm-app\.mjs$/);
  });
});

describe('disable()', () => {
  it('puts back the then methods it replaced (QueryPromise, the select mixins, $count); enable() hooks them again', () => {
    const prototypes = [
      requireLibrary<{ QueryPromise: { prototype: object } }>('drizzle-orm').QueryPromise.prototype,
      pgCore.PgSelectBase.prototype,
      requireLibrary<{ PgCountBuilder: { prototype: object } }>('drizzle-orm/pg-core/query-builders/count').PgCountBuilder.prototype,
      mysqlCore.MySqlSelectBase.prototype,
    ];
    const state = () => prototypes.map((prototype) => ThenReadHooks.isPatched(prototype));
    const isMethod = () => prototypes.map((prototype) => typeof Object.getOwnPropertyDescriptor(prototype, 'then')?.value === 'function');
    expect(state()).toEqual([true, true, true, true]);
    tracing.instrumentation.disable();
    try {
      expect(state()).toEqual([false, false, false, false]);
      expect(isMethod()).toEqual([true, true, true, true]);
      expect(isPatchedByPoolLeak(Object.getOwnPropertyDescriptor(prototypes[0]!, 'then')?.value)).toBe(false);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(state()).toEqual([true, true, true, true]);
  });
});
