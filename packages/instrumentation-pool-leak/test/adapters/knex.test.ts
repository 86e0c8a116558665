// knex 3 on the real PostgreSQL: knex's pool is a tarn Pool and the resources tarn lends are pg
// Clients, so the tarn adapter makes the checkout spans and pg-pool's adapter, which sees every
// pg `Client.query`, checks each statement against the lease of its connection (#6).
import { SpanStatusCode } from '@opentelemetry/api';
import { isWrapped } from '@opentelemetry/instrumentation';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { Knex } from 'knex';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requireLibrary, tick, unhandledRejectionsDuring } from '../support/in-memory-resources';
import { loadPg, postgresConfig } from '../support/pg';
import { lineOf } from '../support/source-lines';
import { childOf, eventNamed, expectCheckedIn } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const knex = requireLibrary<typeof import('knex').knex>('knex');
const pg = loadPg();
const CHECKOUT = 'tarn checkout';
const THIS_FILE = 'knex.test.ts';
const KNEX_TIMEOUT =
  'Knex: Timeout acquiring a connection. The pool is probably full. Are you missing a .transacting(trx) call?';

/** knex warns on the console about broken connections; the tests provoke them on purpose. */
const quietLog = { warn() {}, error() {}, deprecate() {}, debug() {} };
const instances: Knex[] = [];

function newKnex(pool: Knex.PoolConfig = {}, extra: Partial<Knex.Config> = {}): Knex {
  const db = knex({ client: 'pg', connection: postgresConfig(), pool: { min: 0, max: 2, ...pool }, log: quietLog, ...extra });
  instances.push(db);
  return db;
}

const checkouts = (): ReadableSpan[] => tracing.spansNamed(CHECKOUT);
const onlyCheckout = (): ReadableSpan => tracing.onlySpanNamed(CHECKOUT);

const openLeaseCount = tracing.openLeaseCount;

/** The one checkout span under the request span named `name`. */
function onlyChildOf(name: string): ReadableSpan {
  const spans = childOf(checkouts(), request(name));
  expect(spans).toHaveLength(1);
  return spans[0]!;
}

function request(name: string): ReadableSpan {
  const [span] = tracing.spansNamed(name);
  expect(span).toBeDefined();
  return span!;
}

/**
 * knex calls tarn's acquire from its builder's `then`, and `await builder` (or returning a
 * builder from an async function) makes V8 call that `then` from a job of its own, after the
 * application's frame has left the stack; a transaction acquires from a `then` callback. The
 * instrumentation remembers where the builder or transaction was created and gives the
 * checkout that call site: `code.*` and the stack's first frame name the application line.
 */
function expectApplicationCallSite(span: ReadableSpan, functionName: string, line: string): void {
  expect(span.attributes['code.function.name']).toBe(functionName);
  expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
  expect(span.attributes['code.line.number']).toBe(lineOf(import.meta.url, line));
  const stack = String(span.attributes['code.stacktrace']);
  expect(stack).toContain(`${functionName} (`);
  expect(stack).not.toContain('acquireConnection');
}

beforeEach(() => tracing.exporter.reset());
afterEach(async () => {
  await Promise.all(instances.splice(0).map((db) => db.destroy()));
  expect(openLeaseCount()).toBe(0);
});
afterAll(() => tracing.instrumentation.disable());

describe('queries and transactions', () => {
  it('an awaited query: one tarn checkout span under the caller, code.* at the application line', async () => {
    const db = newKnex();
    async function loadInvoiceTotals() {
      return db.raw('select 41 + 1 as answer'); // line:awaited-raw
    }
    const result = await tracing.inRequest('GET /totals', loadInvoiceTotals);
    expect(result.rows).toEqual([{ answer: 42 }]);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(childOf(checkouts(), request('GET /totals'))).toHaveLength(1);
    expect(span.attributes['pool.library']).toBe('tarn');
    // knex describes its pool: the server and database of its connection settings.
    const { host, port, database } = postgresConfig();
    expect(span.attributes['db.client.connection.pool.name']).toBe(`${host}:${port}/${database}`);
    expect(span.attributes['db.system.name']).toBe('postgresql');
    expectApplicationCallSite(span, 'loadInvoiceTotals', 'awaited-raw');
  });

  it('an awaited query builder: the line that built it, not knex internals', async () => {
    const db = newKnex();
    async function countTables() {
      const rows = await db.select(db.raw('count(*)::int as n')).from('pg_catalog.pg_tables'); // line:builder
      return rows;
    }
    const rows = await tracing.inRequest('GET /tables', countTables);
    expect(Number(rows[0].n)).toBeGreaterThan(0);
    expectApplicationCallSite(onlyCheckout(), 'countTables', 'builder');
  });

  it('a query whose then() the application calls: code.* point at that line', async () => {
    const db = newKnex();
    function loadAnswer() {
      return db.raw('select 42 as answer').then((result: { rows: unknown[] }) => result.rows); // line:then
    }
    expect(await tracing.inRequest('GET /answer', loadAnswer)).toEqual([{ answer: 42 }]);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['code.function.name']).toBe('loadAnswer');
    expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
    expect(span.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'then'));
  });

  it('knex.client.acquireConnection(): code.* at that line; the granted resource is the pg Client', async () => {
    const db = newKnex();
    async function reserveConnection() {
      return (await db.client.acquireConnection()) as unknown; // line:acquireConnection
    }
    const connection = await tracing.inRequest('GET /reserve', reserveConnection);
    expect(connection).toBeInstanceOf(pg.Client);
    await db.client.releaseConnection(connection);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['code.function.name']).toBe('reserveConnection');
    expect(span.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'acquireConnection'));
  });

  it('knex.transaction(callback): one span for the whole transaction under the caller, code.* at the application line', async () => {
    const db = newKnex();
    function transferFunds() {
      return db.transaction(async (trx) => { // line:transaction
        await trx.raw('select 1');
        await new Promise((resolve) => setTimeout(resolve, 30));
        await trx.raw('select 2');
      });
    }
    await tracing.inRequest('POST /transfer', transferFunds);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(childOf(checkouts(), request('POST /transfer'))).toHaveLength(1);
    expect(span.attributes['pool.held_ms']).toBeGreaterThanOrEqual(25);
    expectApplicationCallSite(span, 'transferFunds', 'transaction');
  });
});

describe('call sites carried from where the query was built (#10)', () => {
  // A dependency that clones a builder from a timer callback, as a library's queue would: no
  // application frame is on the stack there (not even an async one, as in a promise job that
  // the application awaits), so the clone keeps the call site of the builder it came from.
  const root = mkdtempSync(join(tmpdir(), 'pool-leak-knex-'));
  const libraryDir = join(root, 'node_modules', 'clone-later');
  mkdirSync(libraryDir, { recursive: true });
  writeFileSync(
    join(libraryDir, 'index.js'),
    'exports.cloneLater = (builder) => new Promise((resolve) => setImmediate(() => resolve([builder.clone()])));\n',
  );
  const library = createRequire(join(root, 'app.js'))('clone-later') as { cloneLater<T>(builder: T): Promise<[T]> };
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('builder.clone() awaited directly: the line that cloned it', async () => {
    const db = newKnex();
    const tables = db('pg_catalog.pg_tables').select(db.raw('count(*)::int as n'));
    async function countCatalogTables() {
      return await tables.clone().where('schemaname', 'pg_catalog'); // line:clone
    }
    const rows = await tracing.inRequest('GET /catalog', countCatalogTables);
    expect(rows[0].n).toBeGreaterThan(0);
    expectApplicationCallSite(onlyCheckout(), 'countCatalogTables', 'clone');
  });

  it('a clone a library makes in a later job keeps the call site of the builder it came from', async () => {
    const db = newKnex();
    function buildTablesQuery() {
      return db('pg_catalog.pg_tables').select(db.raw('count(*)::int as n')); // line:clone-source
    }
    const [copy] = await library.cloneLater(buildTablesQuery());
    const rows = await tracing.inRequest('GET /copy', async () => await copy);
    expect(rows[0].n).toBeGreaterThan(0);
    expectApplicationCallSite(onlyCheckout(), 'buildTablesQuery', 'clone-source');
  });

  it('two functions awaiting the same kind of builder: each names its own function and line', async () => {
    const db = newKnex();
    async function findCatalogTables() {
      return await db('pg_catalog.pg_tables').where('schemaname', 'pg_catalog').count(); // line:catalog
    }
    async function findInformationTables() {
      return await db('pg_catalog.pg_tables').where('schemaname', 'information_schema').count(); // line:information
    }
    await tracing.inRequest('GET /catalog', findCatalogTables);
    await tracing.inRequest('GET /information', findInformationTables);
    expectApplicationCallSite(onlyChildOf('GET /catalog'), 'findCatalogTables', 'catalog');
    expectApplicationCallSite(onlyChildOf('GET /information'), 'findInformationTables', 'information');
  });

  it('a builder built at start-up and awaited later from a request names where it was built', async () => {
    const db = newKnex();
    function prepareQueries() {
      return { answer: db.raw('select 42 as answer') }; // line:startup
    }
    const queries = prepareQueries();
    async function handleAnswer() {
      return (await queries.answer).rows;
    }
    expect(await tracing.inRequest('GET /answer', handleAnswer)).toEqual([{ answer: 42 }]);
    const span = onlyChildOf('GET /answer');
    expectApplicationCallSite(span, 'prepareQueries', 'startup');
  });

  it('knex.with(), knex.schema and transactionProvider(): the application line of each', async () => {
    const db = newKnex();
    async function withQuery() {
      return await db.with('numbers', db.raw('select 1 as n')).select('n').from('numbers'); // line:with
    }
    async function schemaQuery() {
      return await db.schema.hasTable('pg_tables'); // line:schema
    }
    const provider = db.transactionProvider();
    async function providedTransaction() {
      const trx = await provider(); // line:provider
      await trx.raw('select 1');
      await trx.commit();
      await trx.executionPromise;
    }
    await tracing.inRequest('GET /with', withQuery);
    await tracing.inRequest('GET /schema', schemaQuery);
    await tracing.inRequest('POST /provided', providedTransaction);
    await tick();
    expectApplicationCallSite(onlyChildOf('GET /with'), 'withQuery', 'with');
    expectApplicationCallSite(onlyChildOf('GET /schema'), 'schemaQuery', 'schema');
    expectApplicationCallSite(onlyChildOf('POST /provided'), 'providedTransaction', 'provider');
  });

  it('knex.batchInsert(): its transaction, opened a timer tick later, names the application line', async () => {
    const db = newKnex();
    await db.raw('drop table if exists knex_carrier_batch; create table knex_carrier_batch (id int)');
    tracing.exporter.reset();
    // Not awaited here: no async frame of this function is on the stack when knex opens it.
    function importRows() {
      return db.batchInsert('knex_carrier_batch', [{ id: 1 }, { id: 2 }, { id: 3 }], 2).then(() => 'imported'); // line:batch
    }
    expect(await tracing.inRequest('POST /import', importRows)).toBe('imported');
    await tick();
    expect((await db('knex_carrier_batch').count<{ count: string }[]>())[0]?.count).toBe('3');
    expectApplicationCallSite(onlyChildOf('POST /import'), 'importRows', 'batch');
    await db.raw('drop table knex_carrier_batch');
  });

  it('inside a transaction body, the application\'s own checkouts name their own lines', async () => {
    const db = newKnex({ max: 3 });
    let direct: unknown;
    function auditTransfer() {
      return db.transaction(async (trx) => { // line:outer-transaction
        await trx.raw('select 1');
        await db.raw('select 2'); // line:inside-query
        direct = await db.client.acquireConnection(); // line:inside-acquire
        await db.client.releaseConnection(direct);
      });
    }
    await tracing.inRequest('POST /audit', auditTransfer);
    const spans = childOf(checkouts(), request('POST /audit'));
    expect(spans).toHaveLength(3);
    // The body is an anonymous arrow function: its checkouts have a line but no function name.
    const lines = spans.map((span) => span.attributes['code.line.number']).sort();
    expect(lines).toEqual(['outer-transaction', 'inside-query', 'inside-acquire'].map((line) => lineOf(import.meta.url, line)).sort());
    for (const span of spans) expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
    const transaction = spans.find((span) => span.attributes['code.line.number'] === lineOf(import.meta.url, 'outer-transaction'));
    expect(transaction?.attributes['code.function.name']).toBe('auditTransfer');
  });
});

describe('failures', () => {
  it('acquire timeout: knex\'s own error to the application; the span fails and names the holder (#6)', async () => {
    const db = newKnex({ max: 1 }, { acquireConnectionTimeout: 200 });
    async function holdForReport() {
      return db.client.acquireConnection() as Promise<unknown>; // line:hold
    }
    const held = await holdForReport();
    try {
      const error = await db.raw('select 1').then(
        () => undefined,
        (failure: unknown) => failure as Error,
      );
      expect(error?.name).toBe('KnexTimeoutError');
      expect(error?.message).toBe(KNEX_TIMEOUT);
      const failed = checkouts().find((span) => span.status.code === SpanStatusCode.ERROR)!;
      expect(failed.status.message).toBe('operation timed out for an unknown reason');
      const exhausted = eventNamed(failed, 'pool.exhausted')?.attributes ?? {};
      const holders = exhausted['pool.holders'] as string[];
      expect(holders).toHaveLength(1);
      // The holder's call path (#10): innermost the function that took the connection.
      expect(holders[0]).toMatch(new RegExp(`^holdForReport \\(.*${THIS_FILE}:${lineOf(import.meta.url, 'hold')}\\)( ← .*)? held \\d+ ms — (busy|idle) \\d+ ms( in transaction)?(, last .+)?$`));
      expect(exhausted['db.client.connection.max']).toBe(1);
    } finally {
      // Released even when an assertion fails: afterEach's destroy() waits for every connection.
      await db.client.releaseConnection(held);
    }
  });

  it('pg_terminate_backend of a leased connection: the transaction fails, every span ends, no unhandled rejection', async () => {
    const db = newKnex();
    const admin = new pg.Client(postgresConfig());
    await admin.connect();
    try {
      let outcome: string | undefined;
      const unhandled = await unhandledRejectionsDuring(async () => {
        outcome = await tracing.inRequest('POST /doomed', () =>
          db
            .transaction(async (trx) => {
              const { rows } = await trx.raw<{ rows: { pid: number }[] }>('select pg_backend_pid() as pid');
              await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
              await trx.raw('select 1');
            })
            .then(
              () => 'committed',
              (error: Error) => error.message,
            ),
        );
      });
      // The text depends on whether pg read the server's notice or the reset first.
      expect(outcome).toBeTypeOf('string');
      expect(outcome).not.toBe('committed');
      expect(unhandled).toEqual([]);
      expectCheckedIn(onlyCheckout());
      expect(openLeaseCount()).toBe(0);
      // The pool recovers: tarn's validation drops the broken connection.
      expect((await db.raw('select 1 as one')).rows).toEqual([{ one: 1 }]);
      expect(openLeaseCount()).toBe(0);
    } finally {
      await admin.end();
    }
  });
});

describe('foreign context through the driver (#6)', () => {
  it('a transaction taken in request A and used in request B: one pool.use.foreign_context with B\'s trace', async () => {
    const db = newKnex();
    let trx: Knex.Transaction | undefined;
    await tracing.inRequest('request A', async () => {
      trx = await db.transaction();
      await trx.raw('select 1');
      await trx.raw('select 2');
    });
    await tracing.inRequest('request B', async () => {
      await trx!.raw('select 3');
      await trx!.raw('select 4');
    });
    await trx!.commit();
    // knex releases the connection a few reactions after commit() resolves.
    await trx!.executionPromise;
    await tick();
    const span = onlyCheckout();
    expectCheckedIn(span);
    const requestA = request('request A');
    const requestB = request('request B');
    expect(span.spanContext().traceId).toBe(requestA.spanContext().traceId);
    const foreign = span.events.filter((event) => event.name === 'pool.use.foreign_context');
    expect(foreign).toHaveLength(1);
    expect(foreign[0]!.attributes?.['pool.use.trace_id']).toBe(requestB.spanContext().traceId);
    expect(foreign[0]!.attributes?.['pool.use.span_id']).toBe(requestB.spanContext().spanId);
    expect(requestB.links.map((link) => link.context.spanId)).toEqual([span.spanContext().spanId]);
  });

  it('a transaction used only inside its own request: no foreign-context event', async () => {
    const db = newKnex();
    await tracing.inRequest('request A', () =>
      db.transaction(async (trx) => {
        await trx.raw('select 1');
        await trx.raw('select 2');
      }),
    );
    const span = onlyCheckout();
    expect(eventNamed(span, 'pool.use.foreign_context')).toBeUndefined();
  });
});

describe('disable()', () => {
  it('restores knex own creation, clone, run and acquire methods; enable() puts the hooks back', () => {
    const Client = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/client.js');
    const PgClient = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/dialects/postgres/index.js');
    const Runner = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/execution/runner.js');
    const Transaction = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/execution/transaction.js');
    const QueryBuilder = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/query/querybuilder.js');
    const hooked = () => [
      isWrapped(QueryBuilder.prototype['clone']),
      isWrapped(Client.prototype['ref']),
      isWrapped(Client.prototype['raw']),
      isWrapped(Client.prototype['initializePool']),
      isWrapped(PgClient.prototype['queryBuilder']),
      isWrapped(PgClient.prototype['transaction']),
      isWrapped(Runner.prototype['run']),
      isWrapped(Transaction.prototype['acquireConnection']),
    ];
    expect(hooked()).toEqual([true, true, true, true, true, true, true, true]);
    tracing.instrumentation.disable();
    try {
      expect(hooked()).toEqual([false, false, false, false, false, false, false, false]);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(hooked()).toEqual([true, true, true, true, true, true, true, true]);
  });
});
