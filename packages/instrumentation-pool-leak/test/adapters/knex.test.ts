// knex 3 on the real PostgreSQL: knex's pool is a tarn Pool and the resources tarn lends are pg
// Clients, so the tarn adapter makes the checkout spans and pg-pool's adapter, which sees every
// pg `Client.query`, checks each statement against the lease of its connection (#6).
import { SpanStatusCode } from '@opentelemetry/api';
import { isWrapped } from '@opentelemetry/instrumentation';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { Knex } from 'knex';
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

describe('failures', () => {
  it('acquire timeout: knex\'s own error to the application; the span fails and names the holder (#6)', async () => {
    const db = newKnex({ max: 1 }, { acquireConnectionTimeout: 200 });
    async function holdForReport() {
      return db.client.acquireConnection() as Promise<unknown>; // line:hold
    }
    const held = await holdForReport();
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
    expect(holders[0]).toMatch(new RegExp(`^holdForReport \\(.*${THIS_FILE}:${lineOf(import.meta.url, 'hold')}\\) held \\d+ ms$`));
    expect(exhausted['db.client.connection.max']).toBe(1);
    await db.client.releaseConnection(held);
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
  it('restores knex own creation, run and acquire methods; enable() puts the hooks back', () => {
    const Client = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/client.js');
    const PgClient = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/dialects/postgres/index.js');
    const Runner = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/execution/runner.js');
    const Transaction = requireLibrary<{ prototype: Record<string, unknown> }>('knex/lib/execution/transaction.js');
    const hooked = () => [
      isWrapped(Client.prototype['raw']),
      isWrapped(Client.prototype['initializePool']),
      isWrapped(PgClient.prototype['queryBuilder']),
      isWrapped(PgClient.prototype['transaction']),
      isWrapped(Runner.prototype['run']),
      isWrapped(Transaction.prototype['acquireConnection']),
    ];
    expect(hooked()).toEqual([true, true, true, true, true, true]);
    tracing.instrumentation.disable();
    try {
      expect(hooked()).toEqual([false, false, false, false, false, false]);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(hooked()).toEqual([true, true, true, true, true, true]);
  });
});
