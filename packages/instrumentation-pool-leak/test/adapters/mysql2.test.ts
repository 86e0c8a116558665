// mysql2 adapter against a real MariaDB (started by test/setup/mariadb.ts) and the real SDK:
// callback and promise pools, PoolCluster, statements, failures, invalid releases, issue #6.
import { context, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { isPatchedByPoolLeak } from '../../src/adapters/kit/patcher';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { tracingChannel } from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { describeWithMariaDb } from '../support/mariadb';
import {
  callerLine,
  collectUnhandledRejections,
  loadMysql2,
  loadMysql2Promise,
  mysql2Options,
  mysql2Version,
  openLeaseCount,
  sleep,
  until,
} from '../support/mysql2';
import { allAttributeText, childOf, eventNamed, eventNames, expectCheckedIn } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const mysql = loadMysql2();
const mysqlPromise = loadMysql2Promise();

type CallbackPool = ReturnType<typeof mysql.createPool>;
type PromisePool = ReturnType<typeof mysqlPromise.createPool>;
type CallbackConnection = Parameters<Parameters<CallbackPool['getConnection']>[0]>[1];
type PromiseConnection = Awaited<ReturnType<PromisePool['getConnection']>>;
type PoolOptions = Parameters<typeof mysql.createPool>[0] & object;

const CHECKOUT = 'mysql2 checkout';
const [MAJOR, MINOR] = mysql2Version();
/** mysql2 3.23 made pool.end() fail the requests still queued. */
const endFailsWaiters = MAJOR > 3 || (MAJOR === 3 && MINOR >= 23);
const THIS_FILE = 'mysql2.test.ts';
const rejections = collectUnhandledRejections();

const closers: (() => Promise<unknown>)[] = [];
function callbackPool(options: Partial<PoolOptions> = {}): CallbackPool {
  const pool = mysql.createPool({ ...mysql2Options(), connectionLimit: 2, ...options });
  closers.push(() => new Promise((resolve) => pool.end(resolve)));
  return pool;
}
function promisePool(options: Partial<PoolOptions> = {}): PromisePool {
  const pool = mysqlPromise.createPool({ ...mysql2Options(), connectionLimit: 2, ...options });
  closers.push(() => pool.end().catch(() => undefined));
  return pool;
}

/** `pool.getConnection(cb)` as a promise of [error, connection], with the callback's own context. */
function getConnection(pool: CallbackPool): Promise<{ error: unknown; connection: CallbackConnection; spanId: string | undefined }> {
  return new Promise((resolve) =>
    pool.getConnection((error, connection) => resolve({ error, connection, spanId: trace.getActiveSpan()?.spanContext().spanId })),
  );
}

/** `pool.query(sql, cb)` or `pool.execute(sql, cb)` as a promise of the rows. */
function poolStatement(pool: CallbackPool, method: 'query' | 'execute', sql: string): Promise<unknown> {
  return new Promise((resolve, reject) => pool[method](sql, (error: unknown, rows: unknown) => (error ? reject(error) : resolve(rows))));
}

function query(connection: CallbackConnection, sql: string): Promise<unknown> {
  return new Promise((resolve, reject) => connection.query(sql, (error, rows) => (error ? reject(error) : resolve(rows))));
}

function checkouts(): ReadableSpan[] {
  return tracing.spansNamed(CHECKOUT);
}

function onlyCheckout(): ReadableSpan {
  const spans = checkouts();
  expect(spans.map((span) => span.name)).toEqual([CHECKOUT]);
  return spans[0]!;
}

function poolName(): string {
  const { host, port, database } = mysql2Options();
  return `${host}:${port}/${database}`;
}

/** Span id of the active span: what a callback or continuation saw. */
function activeSpanId(): string | undefined {
  return trace.getActiveSpan()?.spanContext().spanId;
}

function expectCallSite(span: ReadableSpan, functionName: string, line?: number): void {
  expect(span.attributes['code.function.name']).toBe(functionName);
  expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
  if (line === undefined) expect(span.attributes['code.line.number']).toBeGreaterThan(0);
  else expect(span.attributes['code.line.number']).toBe(line);
  const stack = String(span.attributes['code.stacktrace']);
  expect(stack).toContain(`at ${functionName} (`);
  expect(stack).not.toMatch(/instrumentation-pool-leak[/\\]src/);
}

function expectPoolAttributes(span: ReadableSpan, name = poolName()): void {
  const { host, port, database } = mysql2Options();
  expect(span.attributes['pool.library']).toBe('mysql2');
  // The test server is MariaDB: its greeting on the pool's first connection says so.
  expect(span.attributes['db.system.name']).toBe('mariadb');
  expect(span.attributes['server.address']).toBe(host);
  expect(span.attributes['server.port']).toBe(port);
  expect(span.attributes['db.namespace']).toBe(database);
  expect(span.attributes['db.client.connection.pool.name']).toBe(name);
}

function requestSpan(name: string): ReadableSpan {
  const [span] = tracing.spansNamed(name);
  expect(span, `span ${name}`).toBeDefined();
  return span!;
}

function expectChildOf(span: ReadableSpan, parent: ReadableSpan): void {
  expect(span.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
  expect(span.spanContext().traceId).toBe(parent.spanContext().traceId);
}

/** Runs `work` in a new root span (a separate trace), as an unrelated request would. */
function inRootSpan<T>(name: string, work: (span: Span) => Promise<T>): Promise<T> {
  return tracing.tracer.startActiveSpan(name, { root: true }, async (span) => {
    try {
      return await work(span);
    } finally {
      span.end();
    }
  });
}

/** Open leases when the test started: a lease a test leaves open (on purpose) must not leak into the next. */
let leasesAtStart = 0;
function openLeases(): number {
  return openLeaseCount(tracing.instrumentation) - leasesAtStart;
}

beforeEach(() => {
  tracing.exporter.reset();
  leasesAtStart = openLeaseCount(tracing.instrumentation);
});
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
  expect(rejections.reasons).toEqual([]);
});
afterAll(() => {
  rejections.stop();
  tracing.instrumentation.disable();
});

describeWithMariaDb('mysql2 checkout forms', () => {
  it('callback pool.getConnection: one span from request to release, child of the caller, with call site and pool', async () => {
    const pool = callbackPool();
    let line = 0;
    await tracing.inRequest('GET /callback', async () => {
      async function loadCustomerCallback() {
        line = callerLine() + 1;
        const { error, connection } = await getConnection(pool);
        expect(error).toBeNull();
        await query(connection, 'SELECT 1');
        connection.release();
      }
      await loadCustomerCallback();
    });
    const span = onlyCheckout();
    expectCheckedIn(span);
    expectChildOf(span, requestSpan('GET /callback'));
    expectPoolAttributes(span);
    expect(span.attributes['code.line.number']).toBeGreaterThan(0);
    expect(String(span.attributes['code.stacktrace'])).toContain(`${THIS_FILE}:${line}`);
    expect(span.attributes['pool.checkin.destroyed']).toBeUndefined();
    expect(openLeases()).toBe(0);
  });

  it('promise pool.getConnection: exactly one span (the promise wrapper and the inner pool are one checkout)', async () => {
    const pool = promisePool();
    let line = 0;
    async function loadCustomerPromise() {
      line = callerLine() + 1;
      const connection = await pool.getConnection();
      const [rows] = await connection.query('SELECT 41 + 1 AS answer');
      connection.release();
      return rows;
    }
    const rows = await tracing.inRequest('GET /promise', loadCustomerPromise);
    expect(rows).toEqual([{ answer: 42 }]);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expectChildOf(span, requestSpan('GET /promise'));
    expectPoolAttributes(span);
    expectCallSite(span, 'loadCustomerPromise', line);
  });

  it('pool.query and pool.execute (callback): one span each, ended at mysql2 own release, callback in the caller context', async () => {
    const pool = callbackPool();
    const seen: (string | undefined)[] = [];
    const results = await tracing.inRequest('GET /pool-statements', async () => {
      const expected = activeSpanId();
      // The named functions call mysql2 themselves: they are the call sites the spans name.
      function listInvoicesCallback(done: (error: unknown, rows: unknown) => void) {
        pool.query('SELECT 7 AS n', done);
      }
      function executeInvoicesCallback(done: (error: unknown, rows: unknown) => void) {
        pool.execute('SELECT ? AS n', [8], done);
      }
      const run = (label: string, statement: typeof listInvoicesCallback) =>
        new Promise<unknown>((resolve, reject) =>
          statement((error, rows) => {
            seen.push(`${label}: ${activeSpanId() === expected ? 'caller context' : 'other context'}`);
            return error ? reject(error) : resolve(rows);
          }),
        );
      return [await run('query', listInvoicesCallback), await run('execute', executeInvoicesCallback)];
    });
    expect(results).toEqual([[{ n: 7 }], [{ n: 8 }]]);
    expect(seen).toEqual(['query: caller context', 'execute: caller context']);
    await until('both internal releases', () => checkouts().length === 2);
    const [querySpan, executeSpan] = checkouts();
    for (const span of [querySpan!, executeSpan!]) {
      expectCheckedIn(span);
      expectChildOf(span, requestSpan('GET /pool-statements'));
      expect(eventNames(span)).not.toContain('pool.checkin.loop_tick');
    }
    expectCallSite(querySpan!, 'listInvoicesCallback');
    expectCallSite(executeSpan!, 'executeInvoicesCallback');
    expect(openLeases()).toBe(0);
  });

  it('pool.query and pool.execute (promise): one span each, pointing at the caller', async () => {
    const pool = promisePool();
    async function listInvoicesPromise() {
      const [rows] = await pool.query('SELECT 5 AS n');
      return rows;
    }
    async function executeInvoicesPromise() {
      const [rows] = await pool.execute('SELECT ? AS n', [6]);
      return rows;
    }
    const results = await tracing.inRequest('GET /pool-statements-promise', async () => [
      await listInvoicesPromise(),
      await executeInvoicesPromise(),
    ]);
    expect(results).toEqual([[{ n: 5 }], [{ n: 6 }]]);
    await until('both internal releases', () => checkouts().length === 2);
    const [querySpan, executeSpan] = checkouts();
    expectCallSite(querySpan!, 'listInvoicesPromise');
    expectCallSite(executeSpan!, 'executeInvoicesPromise');
    for (const span of [querySpan!, executeSpan!]) {
      expectCheckedIn(span);
      expectChildOf(span, requestSpan('GET /pool-statements-promise'));
    }
  });

  it('PoolCluster.getConnection(pattern, selector, cb): the span belongs to the pool that served it, named by its node id', async () => {
    const cluster = mysql.createPoolCluster();
    closers.push(() => new Promise((resolve) => cluster.end(resolve)));
    cluster.add('REPLICA', { ...mysql2Options(), connectionLimit: 1 });
    function readFromReplica(done: (error: unknown, connection: CallbackConnection) => void) {
      cluster.getConnection('REPLICA*', 'ORDER', done);
    }
    await tracing.inRequest('GET /cluster', async () => {
      const connection = await new Promise<CallbackConnection>((resolve, reject) =>
        readFromReplica((error, connection) => (error ? reject(error) : resolve(connection))),
      );
      expect(await query(connection, 'SELECT 3 AS n')).toEqual([{ n: 3 }]);
      connection.release();
      const [rows] = await new Promise<unknown[]>((resolve, reject) =>
        cluster.of('REPLICA').query('SELECT 4 AS n', (error, result) => (error ? reject(error) : resolve([result]))),
      );
      expect(rows).toEqual([{ n: 4 }]);
    });
    await until('both checkouts ended', () => checkouts().length === 2);
    const [getSpan, querySpan] = checkouts();
    for (const span of [getSpan!, querySpan!]) {
      expectCheckedIn(span);
      expectPoolAttributes(span, 'REPLICA');
      expectChildOf(span, requestSpan('GET /cluster'));
      expect(eventNames(span)).not.toContain('pool.checkin.loop_tick');
    }
    expectCallSite(getSpan!, 'readFromReplica');
  });

  it('PoolCluster.of(no such node).query: the error reaches the callback; a checkout made inside it is the application own', async () => {
    const cluster = mysql.createPoolCluster();
    closers.push(() => new Promise((resolve) => cluster.end(resolve)));
    cluster.add('PRIMARY', { ...mysql2Options(), connectionLimit: 1 });
    const pool = callbackPool();
    const taken = await tracing.inRequest('GET /fallback', () => {
      const expected = activeSpanId();
      return new Promise<{ message: string; sameContext: boolean; connection: Promise<CallbackConnection> }>((resolve) =>
        cluster.of('MISSING').query('SELECT 1', (error) =>
          resolve({
            message: errorMessage(error),
            sameContext: activeSpanId() === expected,
            connection: getConnection(pool).then((got) => got.connection),
          }),
        ),
      );
    });
    expect(taken.message).toMatch(/^Pool does Not exist/); // 3.0 says 'exists.'
    expect(taken.sameContext).toBe(true);
    const connection = await taken.connection;
    // Released from another trace: the application's lease reports it; a lease mysql2 releases would not.
    await inRootSpan('elsewhere', async () => connection.release());
    expect(eventNames(onlyCheckout())).toContain('pool.checkin.loop_tick');
  });

  it('promise PoolCluster: getConnection and of().query, one span each; an unnamed node falls back to host:port/db', async () => {
    const cluster = mysqlPromise.createPoolCluster();
    closers.push(() => cluster.end().catch(() => undefined));
    cluster.add({ ...mysql2Options(), connectionLimit: 1 });
    async function readFromAnyNode() {
      const connection = await cluster.getConnection();
      connection.release();
      const [rows] = await cluster.of('*').query('SELECT 9 AS n');
      return rows;
    }
    expect(await tracing.inRequest('GET /cluster-promise', readFromAnyNode)).toEqual([{ n: 9 }]);
    await until('both checkouts ended', () => checkouts().length === 2);
    for (const span of checkouts()) {
      expectCheckedIn(span);
      expectPoolAttributes(span);
      expectCallSite(span, 'readFromAnyNode');
    }
  });
});

describeWithMariaDb('mysql2 context', () => {
  it('a queued waiter continues in its own context (callback and promise), with pool.pending_at_request', async () => {
    const pool = callbackPool({ connectionLimit: 1 });
    const promiseFacade = pool.promise();
    const holder = await getConnection(pool);
    const seen: Record<string, string | undefined> = {};
    const callbackWaiter = tracing.inRequest('waiter-callback', async () => {
      const { connection, spanId } = await getConnection(pool);
      seen.callback = spanId;
      connection.release();
    });
    const promiseWaiter = tracing.inRequest('waiter-promise', async () => {
      const connection = await promiseFacade.getConnection();
      seen.promise = activeSpanId();
      connection.release();
    });
    // Released from an unrelated trace: mysql2 hands the queued callbacks that context otherwise.
    await inRootSpan('releaser', async () => {
      await sleep(20);
      holder.connection.release();
    });
    await Promise.all([callbackWaiter, promiseWaiter]);
    const callbackRequest = requestSpan('waiter-callback');
    const promiseRequest = requestSpan('waiter-promise');
    expect(seen).toEqual({ callback: callbackRequest.spanContext().spanId, promise: promiseRequest.spanContext().spanId });
    const [callbackCheckout] = childOf(checkouts(), callbackRequest);
    const [promiseCheckout] = childOf(checkouts(), promiseRequest);
    expect(callbackCheckout?.attributes['pool.pending_at_request']).toBe(0);
    expect(promiseCheckout?.attributes['pool.pending_at_request']).toBe(1);
    for (const span of [callbackCheckout!, promiseCheckout!]) {
      expectCheckedIn(span);
      expect(eventNames(span)).toEqual(['pool.acquired']);
    }
    expect(openLeases()).toBe(0);
  });

  it('a connection opened by one trace, reused by others: statement callbacks and internal releases stay in the user trace', async () => {
    const pool = callbackPool({ connectionLimit: 1 });
    // Trace 1 opens the only socket; mysql2 runs that socket's callbacks in trace 1 from now on.
    await inRootSpan('opener', async () => {
      const { connection } = await getConnection(pool);
      connection.release();
    });
    const seenInCallback = await inRootSpan('reuser-callback', async () => {
      const { connection } = await getConnection(pool);
      return new Promise<string | undefined>((resolve, reject) =>
        connection.query('SELECT 1', (error) => {
          const spanId = activeSpanId();
          // The classic callback style: release inside the statement callback.
          connection.release();
          return error ? reject(error) : resolve(spanId);
        }),
      );
    });
    await inRootSpan('reuser-pool-query', () => poolStatement(pool, 'query', 'SELECT 2'));
    await inRootSpan('reuser-pool-execute', () => poolStatement(pool, 'execute', 'SELECT 3'));
    await until('every checkout ended', () => checkouts().length === 4);
    expect(seenInCallback).toBe(requestSpan('reuser-callback').spanContext().spanId);
    for (const name of ['reuser-callback', 'reuser-pool-query', 'reuser-pool-execute']) {
      const [span] = childOf(checkouts(), requestSpan(name));
      expect(span, name).toBeDefined();
      expectCheckedIn(span!);
      expect(eventNames(span!), name).toEqual(['pool.acquired']);
    }
  });
});

/** Kills a connection server-side from a separate admin connection, and waits until its socket ends. */
async function killFromServer(connection: {
  readonly threadId: number | null;
  once(event: 'end', listener: () => void): unknown;
}): Promise<void> {
  const ended = new Promise<void>((resolve) => connection.once('end', () => resolve()));
  const admin = mysql.createConnection(mysql2Options());
  try {
    await new Promise((resolve, reject) =>
      admin.query(`KILL ${connection.threadId}`, (error) => (error ? reject(error) : resolve(undefined))),
    );
  } finally {
    admin.destroy();
  }
  await ended;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

describeWithMariaDb('mysql2 failures', () => {
  it('waitForConnections: false on a full pool: the same error, span ERROR with pool.exhausted', async () => {
    const pool = callbackPool({ connectionLimit: 1, waitForConnections: false });
    const holder = await getConnection(pool);
    tracing.exporter.reset();
    const { error } = await getConnection(pool);
    expect(errorMessage(error)).toBe('No connections available.');
    const span = onlyCheckout();
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'No connections available.' });
    expect(eventNamed(span, 'exception')?.attributes?.['exception.message']).toBe('No connections available.');
    expect(eventNamed(span, 'pool.exhausted')?.attributes?.['pool.holders.count']).toBe(1);
    expect(span.attributes['pool.pending_at_request']).toBe(0);
    holder.connection.release();
    expect(openLeases()).toBe(0);
  });

  it('pool.end() with a connection still held: mysql2 ignores the later release, the lease ends marked destroyed', async () => {
    const pool = promisePool({ connectionLimit: 1 });
    const holder = await pool.getConnection();
    await pool.end();
    holder.release();
    const held = onlyCheckout();
    expectCheckedIn(held);
    expect(held.attributes['pool.checkin.destroyed']).toBe(true);
    expect(openLeases()).toBe(0);
    await expect(pool.getConnection()).rejects.toThrow('Pool is closed.');
    expect(checkouts().at(-1)?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'Pool is closed.' });
  });

  // Before 3.23 pool.end() leaves queued requests waiting forever (their spans then stay open,
  // truthfully, until the tracer provider shuts down).
  it.runIf(endFailsWaiters)('pool.end() while a caller waits: "Pool is closed.", span ERROR without pool.exhausted', async () => {
    const pool = promisePool({ connectionLimit: 1 });
    const holder = await pool.getConnection();
    const waiter = tracing.inRequest('waiter', () => pool.getConnection().then(() => 'granted', (error: unknown) => errorMessage(error)));
    await until('the waiter to queue', () => openLeases() === 2);
    const ending = pool.end();
    expect(await waiter).toBe('Pool is closed.');
    await ending;
    holder.release();
    const [failed] = childOf(checkouts(), requestSpan('waiter'));
    expect(failed?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'Pool is closed.' });
    expect(eventNamed(failed!, 'pool.exhausted')).toBeUndefined();
    expect(openLeases()).toBe(0);
  });

  it('a connect error (nothing listens on the port) reaches the callback unchanged and fails the span', async () => {
    const pool = callbackPool({ port: 1, connectTimeout: 2000 });
    const { error, connection } = await getConnection(pool);
    expect(connection).toBeUndefined();
    expect((error as { code?: string }).code).toBe('ECONNREFUSED');
    const span = onlyCheckout();
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['error.type']).toBe('ECONNREFUSED');
    expect(eventNamed(span, 'pool.exhausted')).toBeUndefined();
    expect(openLeases()).toBe(0);
  });

  it('server-side KILL of a leased connection (callback API): query errors, release() ends the span, the pool recovers', async () => {
    const pool = callbackPool({ connectionLimit: 1 });
    const { connection } = await getConnection(pool);
    await killFromServer(connection);
    await expect(query(connection, 'SELECT 1')).rejects.toThrow();
    expect(openLeases()).toBe(1);
    connection.release();
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
    expect(openLeases()).toBe(0);
    const next = await getConnection(pool);
    expect(await query(next.connection, 'SELECT 2 AS n')).toEqual([{ n: 2 }]);
    next.connection.release();
    expect(openLeases()).toBe(0);
  });

  it('server-side KILL of a leased connection (promise API): query rejects, destroy() ends the span, nothing unhandled', async () => {
    const pool = promisePool({ connectionLimit: 1 });
    const connection = await pool.getConnection();
    await killFromServer(connection.connection);
    await expect(connection.query('SELECT 1')).rejects.toThrow();
    connection.destroy();
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
    expect(openLeases()).toBe(0);
    const [rows] = await pool.query('SELECT 3 AS n');
    expect(rows).toEqual([{ n: 3 }]);
  });
});

/** What mysql2 itself did: whether the call threw, and its pool's connection lists afterwards. */
interface PoolEffect {
  readonly thrown: string | undefined;
  readonly all: number;
  readonly free: number;
}

function poolEffect(pool: CallbackPool, thrown: string | undefined): PoolEffect {
  const internals = pool as unknown as { _allConnections: { length: number }; _freeConnections: { length: number } };
  return { thrown, all: internals._allConnections.length, free: internals._freeConnections.length };
}

function attempt(action: () => void): string | undefined {
  try {
    action();
    return undefined;
  } catch (error) {
    return errorMessage(error);
  }
}

/**
 * Runs a misuse once with the instrumentation disabled and once enabled, on fresh pools, and
 * returns both effects: the misuse must leave mysql2 behaving exactly as it does on its own.
 */
async function withAndWithout(misuse: (pool: CallbackPool) => Promise<PoolEffect>): Promise<{ without: PoolEffect; withIt: PoolEffect }> {
  tracing.instrumentation.disable();
  let without: PoolEffect;
  try {
    without = await misuse(callbackPool());
  } finally {
    tracing.instrumentation.enable();
  }
  tracing.exporter.reset();
  const withIt = await tracing.inRequest('misuse', () => misuse(callbackPool()));
  return { without, withIt };
}

function invalidReleaseEvents(): { reason: unknown; stack: string }[] {
  return tracing.exporter
    .getFinishedSpans()
    .flatMap((span) => span.events)
    .filter((event) => event.name === 'pool.release.invalid')
    .map((event) => ({ reason: event.attributes?.['pool.release.reason'], stack: String(event.attributes?.['pool.release.stacktrace']) }));
}

describeWithMariaDb('mysql2 invalid releases', () => {
  it('double conn.release(): pool.release.invalid (double_release) on the active span; mysql2 does what it does alone', async () => {
    const { without, withIt } = await withAndWithout(async (pool) => {
      const { connection } = await getConnection(pool);
      connection.release();
      return poolEffect(pool, attempt(() => connection.release()));
    });
    expect(withIt).toEqual(without);
    const events = invalidReleaseEvents();
    expect(events).toHaveLength(1);
    expect(events[0]?.reason).toBe('double_release');
    expect(events[0]?.stack).toContain(THIS_FILE);
    expect(eventNamed(requestSpan('misuse'), 'pool.release.invalid')).toBeDefined();
    expectCheckedIn(onlyCheckout());
  });

  it('release after destroy, and destroy twice: reason destroyed; mysql2 unchanged', async () => {
    const { without, withIt } = await withAndWithout(async (pool) => {
      const { connection } = await getConnection(pool);
      connection.destroy();
      const afterRelease = attempt(() => connection.release());
      return poolEffect(pool, afterRelease ?? attempt(() => connection.destroy()));
    });
    expect(withIt).toEqual(without);
    expect(invalidReleaseEvents().map((event) => event.reason)).toEqual(['destroyed', 'destroyed']);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
  });

  it('pool.releaseConnection(conn) is a checkin; a second one is a double release; mysql2 unchanged', async () => {
    const { without, withIt } = await withAndWithout(async (pool) => {
      const { connection } = await getConnection(pool);
      pool.releaseConnection(connection);
      return poolEffect(pool, attempt(() => pool.releaseConnection(connection)));
    });
    expect(withIt).toEqual(without);
    expect(invalidReleaseEvents().map((event) => event.reason)).toEqual(['double_release']);
    expectCheckedIn(onlyCheckout());
  });

  it('promise connection released twice with no active span: a short mysql2 release.invalid span linked to the checkout', async () => {
    const pool = promisePool();
    const connection = await pool.getConnection();
    connection.release();
    connection.release();
    const [invalid] = tracing.spansNamed('mysql2 release.invalid');
    expect(invalid).toBeDefined();
    expect(invalid!.links[0]?.context.spanId).toBe(onlyCheckout().spanContext().spanId);
    expect(eventNamed(invalid!, 'pool.release.invalid')?.attributes?.['pool.release.reason']).toBe('double_release');
  });

  it('the pool reaping its own idle connections is not an invalid release', async (test) => {
    const pool = callbackPool({ connectionLimit: 2, maxIdle: 0, idleTimeout: 10 });
    // Idle reaping (maxIdle, idleTimeout) came with a later 3.x.
    if (typeof (pool as unknown as { _removeIdleTimeoutConnections?: unknown })._removeIdleTimeoutConnections !== 'function') test.skip();
    const { connection } = await getConnection(pool);
    connection.release();
    // mysql2 sweeps idle connections once a second.
    await until('the idle connection to be reaped', () => poolEffect(pool, undefined).all === 0, 5_000);
    expect(invalidReleaseEvents()).toEqual([]);
    expect(tracing.spansNamed('mysql2 release.invalid')).toEqual([]);
    expectCheckedIn(onlyCheckout());
  });

  it('conn.end() with gracefulEnd takes the connection out of the pool: a checkin marked destroyed', async (test) => {
    const pool = callbackPool({ gracefulEnd: true } as Partial<PoolOptions>);
    const { connection } = await getConnection(pool);
    // gracefulEnd came with a later 3.x; before it, end() on a pooled connection is a release.
    if ((connection.config as { gracefulEnd?: boolean }).gracefulEnd !== true) {
      connection.release();
      test.skip();
    }
    await new Promise((resolve) => connection.end(resolve));
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
    expect(poolEffect(pool, undefined).all).toBe(0);
  });
});

describeWithMariaDb('mysql2 issue #6: pool.exhausted names the holders', () => {
  it('a checkout rejected with "Queue limit reached." lists holdA then holdB, the max and the queue', async () => {
    const pool = promisePool({ connectionLimit: 2, queueLimit: 1 });
    const held: PromiseConnection[] = [];
    const lines: Record<string, number> = {};
    async function holdA() {
      lines.holdA = callerLine() + 1;
      held.push(await pool.getConnection());
    }
    async function holdB() {
      lines.holdB = callerLine() + 1;
      held.push(await pool.getConnection());
    }
    await holdA();
    await sleep(30);
    await holdB();
    const queued = pool.getConnection();
    await until('the third request to queue', () => openLeases() === 3);
    async function takeOneTooMany() {
      return pool.getConnection();
    }
    const error = await takeOneTooMany().then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(errorMessage(error)).toBe('Queue limit reached.');
    const failed = checkouts().find((span) => span.attributes['code.function.name'] === 'takeOneTooMany');
    expect(failed?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'Queue limit reached.' });
    expect(failed?.attributes['pool.pending_at_request']).toBe(1);
    const exhausted = eventNamed(failed!, 'pool.exhausted')?.attributes;
    const holders = exhausted?.['pool.holders'] as string[];
    expect(holders).toHaveLength(2);
    expect(holders[0]).toMatch(new RegExp(`^holdA \\(.*${THIS_FILE}:${lines.holdA}\\)( ← .*)? held \\d+ ms — (busy|idle) \\d+ ms( in transaction)?(, last .+)?$`));
    expect(holders[1]).toMatch(new RegExp(`^holdB \\(.*${THIS_FILE}:${lines.holdB}\\)( ← .*)? held \\d+ ms — (busy|idle) \\d+ ms( in transaction)?(, last .+)?$`));
    const heldMs = holders.map((holder) => Number(/held (\d+) ms/.exec(holder)?.[1]));
    expect(heldMs[0]).toBeGreaterThanOrEqual(heldMs[1]!);
    expect(exhausted?.['pool.holders.count']).toBe(2);
    expect(exhausted?.['db.client.connection.max']).toBe(2);
    expect(exhausted?.['pool.pending']).toBe(1);
    held[0]!.release();
    (await queued).release();
    held[1]!.release();
    expect(openLeases()).toBe(0);
  });
});

/** One statement on a connection of either API, awaited. */
type RunStatement = (sql: string) => Promise<unknown>;

/** The `pool.use.foreign_context` counter, summed over the points that match `where`. */
async function foreignUseCount(where: (attributes: Record<string, unknown>) => boolean = () => true): Promise<number> {
  const points = await tracing.metricPoints('pool.use.foreign_context');
  return points.filter((point) => where(point.attributes)).reduce((sum, point) => sum + Number(point.value), 0);
}

describeWithMariaDb('mysql2 issue #6: pool.use.foreign_context', () => {
  const forms: [string, (pool: CallbackPool) => Promise<{ run: RunStatement; nested: RunStatement; release(): void }>][] = [
    [
      'callback connection',
      async (pool) => {
        const { connection } = await getConnection(pool);
        return {
          run: (sql) => query(connection, sql),
          // A statement issued from inside another statement's callback.
          nested: (sql) =>
            new Promise((resolve, reject) =>
              connection.query('SELECT 0', (error) => (error ? reject(error) : resolve(query(connection, sql)))),
            ),
          release: () => connection.release(),
        };
      },
    ],
    [
      'promise connection',
      async (pool) => {
        const connection = await pool.promise().getConnection();
        return {
          run: (sql) => connection.query(sql),
          nested: (sql) => connection.query('SELECT 0').then(() => connection.query(sql)),
          release: () => connection.release(),
        };
      },
    ],
  ];

  it.each(forms)('%s: one event on the lease owner span for a statement from another trace, linked from that trace', async (form, take) => {
    // The only connection is opened by another trace first: mysql2 runs its socket's callbacks in
    // that trace, which must not count as foreign use by the lease in trace A.
    const pool = callbackPool({ connectionLimit: 1 });
    await inRootSpan('opener', async () => (await take(pool)).release());
    const countBefore = await foreignUseCount();
    const lease = await inRootSpan('trace A', async () => {
      const taken = await take(pool);
      // Statements in the lease's own trace: direct, in a child span, from a statement callback
      // or continuation, and from a timer set inside A.
      await taken.run('SELECT 1');
      await tracing.tracer.startActiveSpan('A child', async (child) => {
        await taken.run('SELECT 2');
        child.end();
      });
      await taken.nested('SELECT 3');
      await new Promise((resolve, reject) => setTimeout(() => taken.run('SELECT 4').then(resolve, reject), 5));
      return taken;
    });
    const traceB = await inRootSpan('trace B', async (span) => {
      async function useAnotherRequestsConnection() {
        await lease.run('SELECT 5');
        await lease.run('SELECT 6');
      }
      await useAnotherRequestsConnection();
      return span.spanContext();
    });
    lease.release();
    const checkout = childOf(checkouts(), requestSpan('trace A'))[0];
    expect(checkout, form).toBeDefined();
    const events = checkout!.events.filter((event) => event.name === 'pool.use.foreign_context');
    expect(events).toHaveLength(1);
    expect(events[0]?.attributes?.['pool.use.trace_id']).toBe(traceB.traceId);
    expect(events[0]?.attributes?.['pool.use.span_id']).toBe(traceB.spanId);
    const stack = String(events[0]?.attributes?.['pool.use.stacktrace']);
    expect(stack).toContain('useAnotherRequestsConnection');
    expect(stack).toContain(THIS_FILE);
    const spanB = requestSpan('trace B');
    expect(spanB.links.map((link) => link.context.spanId)).toEqual([checkout!.spanContext().spanId]);
    // Counted once, under the call site that took the lease.
    expect(await foreignUseCount()).toBe(countBefore + 1);
    const takerLine = checkout!.attributes['code.line.number'];
    expect(await foreignUseCount((attributes) => attributes['code.line.number'] === takerLine)).toBeGreaterThanOrEqual(1);
    expectCheckedIn(checkout!);
  });

  it.each(forms)('%s: no event for a lease taken with no active span', async (_form, take) => {
    const pool = callbackPool();
    const lease = await context.with(context.active(), () => take(pool));
    await inRootSpan('trace B', () => lease.run('SELECT 1'));
    lease.release();
    const checkout = onlyCheckout();
    expect(checkout.parentSpanContext).toBeUndefined();
    expect(eventNames(checkout)).toEqual(['pool.acquired']);
    expect(requestSpan('trace B').links).toEqual([]);
  });
});

describeWithMariaDb('mysql2 secrets, metrics, disable, TracingChannel', () => {
  it('user name, password and connection URI never appear in exported attributes', async () => {
    const { host, port, user, password, database } = mysql2Options();
    const uri = `mysql://${user}:${encodeURIComponent(password)}@${host}:${port}/${database}`;
    const pool = mysql.createPool(uri);
    closers.push(() => new Promise((resolve) => pool.end(resolve)));
    await poolStatement(pool, 'query', 'SELECT 1');
    const connection = (await getConnection(pool)).connection;
    connection.release();
    connection.release();
    await until('both checkouts ended', () => checkouts().length === 2);
    const text = allAttributeText(tracing.exporter.getFinishedSpans());
    expect(text).toContain(`${host}:${port}/${database}`);
    expect(text).not.toContain(password);
    expect(text).not.toContain(uri);
    expect(text).not.toContain(`${user}:`);
    expect(text).not.toContain(`${user}@`);
    // The test user's name is a prefix of the test database's name: compare whole values.
    const values = tracing.exporter.getFinishedSpans().flatMap((span) => Object.values(span.attributes));
    expect(values).not.toContain(user);
  });

  it('pool metrics read mysql2 own lists: used, idle, pending and max', async () => {
    const cluster = mysql.createPoolCluster();
    closers.push(() => new Promise((resolve) => cluster.end(resolve)));
    cluster.add('METRICS', { ...mysql2Options(), connectionLimit: 3 });
    const connection = await new Promise<CallbackConnection>((resolve, reject) =>
      cluster.getConnection('METRICS', (error, taken) => (error ? reject(error) : resolve(taken))),
    );
    const ofPool = async (name: string) =>
      (await tracing.metricPoints(name)).filter((point) => point.attributes['db.client.connection.pool.name'] === 'METRICS');
    const byState = async () => {
      const points = await ofPool('db.client.connection.count');
      return Object.fromEntries(points.map((point) => [point.attributes['db.client.connection.state'], point.value]));
    };
    expect(await byState()).toEqual({ idle: 0, used: 1 });
    expect((await ofPool('db.client.connection.max')).map((point) => point.value)).toEqual([3]);
    expect((await ofPool('db.client.connection.pending_requests')).map((point) => point.value)).toEqual([0]);
    connection.release();
    expect(await byState()).toEqual({ idle: 1, used: 0 });
  });

  it('disable() restores every patched mysql2 function; enable() patches again', async () => {
    const pool = callbackPool();
    const poolProto = Object.getPrototypeOf(Object.getPrototypeOf(pool)) as Record<string, unknown>;
    const connection = (await getConnection(pool)).connection;
    const patched = () => {
      const connectionProtos: Record<string, unknown>[] = [];
      let proto = Object.getPrototypeOf(connection) as Record<string, unknown> | null;
      for (; proto !== null; proto = Object.getPrototypeOf(proto) as Record<string, unknown> | null) connectionProtos.push(proto);
      const owner = (protos: Record<string, unknown>[], name: string) =>
        protos.find((candidate) => Object.prototype.hasOwnProperty.call(candidate, name))![name];
      const poolProtos = [Object.getPrototypeOf(pool), poolProto] as Record<string, unknown>[];
      return [
        ...['getConnection', 'releaseConnection', 'query', 'execute'].map((name) => isPatchedByPoolLeak(owner(poolProtos, name))),
        ...['release', 'destroy', 'end', 'query', 'execute'].map((name) => isPatchedByPoolLeak(owner(connectionProtos, name))),
        isPatchedByPoolLeak((mysql as unknown as { PoolCluster: { prototype: { add: unknown } } }).PoolCluster.prototype.add),
      ];
    };
    connection.release();
    expect(patched().every(Boolean)).toBe(true);
    tracing.instrumentation.disable();
    try {
      expect(patched().some(Boolean)).toBe(false);
      await poolStatement(callbackPool(), 'query', 'SELECT 1');
      expect(checkouts()).toHaveLength(1);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(patched().every(Boolean)).toBe(true);
    await poolStatement(callbackPool(), 'query', 'SELECT 1');
    await until('the new checkout', () => checkouts().length === 2);
  });

  it('a mysql2:pool:connect TracingChannel subscriber still sees every checkout; still one span each', async () => {
    const [major, minor] = mysql2Version();
    const publishes = major > 3 || (major === 3 && minor >= 20);
    const channel = tracingChannel('mysql2:pool:connect');
    const seen: string[] = [];
    const subscriber = {
      start: () => seen.push('start'),
      end: () => {},
      asyncStart: () => seen.push('asyncStart'),
      asyncEnd: () => {},
      error: () => seen.push('error'),
    };
    channel.subscribe(subscriber);
    try {
      const pool = callbackPool();
      const spanId = await tracing.inRequest('GET /with-subscriber', async () => {
        const { connection, spanId: seenSpanId } = await getConnection(pool);
        connection.release();
        return seenSpanId;
      });
      expect(spanId).toBe(requestSpan('GET /with-subscriber').spanContext().spanId);
      expect(seen).toEqual(publishes ? ['start', 'asyncStart'] : []);
      expectCheckedIn(onlyCheckout());
    } finally {
      channel.unsubscribe(subscriber);
    }
  });
});
