// mariadb adapter (MariaDB Connector/Node.js 3.x) against a real MariaDB and the real SDK, through
// both of the connector's APIs: promises (`mariadb`) and callbacks (`mariadb/callback`).
import { relative } from 'node:path';
import { context, ROOT_CONTEXT, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { isWrapped } from '@opentelemetry/instrumentation';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { Pool, PoolConnection } from 'mariadb';
import type { Pool as CallbackPool, PoolConnection as CallbackConnection, SqlError } from 'mariadb/callback';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { describeWithMariaDb } from '../support/mariadb';
import {
  collectUnhandledRejections,
  inRootSpan,
  internalPoolPrototype,
  loadMariaDb,
  loadMariaDbCallback,
  mariadbOptions,
  openLeaseCount,
  sleep,
  until,
} from '../support/mariadb-connector';
import { allAttributeText, eventNamed, eventNames, expectCheckedIn } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing({ leakThresholdMs: 0 });
const mariadb = loadMariaDb();
const mariadbCallback = loadMariaDbCallback();
const CHECKOUT = 'mariadb checkout';
const THIS_FILE = 'mariadb.test.ts';
const FOREIGN = 'pool.use.foreign_context';
const MISPLACED_CHECKIN_EVENTS = ['pool.checkin.loop_tick', 'pool.checkin.finalizer'];
const HOLD_HEADSTART_MS = 60;

const promisePools: Pool[] = [];
const callbackPools: CallbackPool[] = [];

/** Created outside any span, like a service's pool: its sockets carry no request's context. */
function newPool(options: Record<string, unknown> = {}): Pool {
  const pool = context.with(ROOT_CONTEXT, () => mariadb.createPool({ ...mariadbOptions(), connectionLimit: 2, ...options }));
  promisePools.push(pool);
  return pool;
}

function newCallbackPool(options: Record<string, unknown> = {}): CallbackPool {
  const pool = context.with(ROOT_CONTEXT, () => mariadbCallback.createPool({ ...mariadbOptions(), connectionLimit: 2, ...options }));
  callbackPools.push(pool);
  return pool;
}

const checkouts = (): ReadableSpan[] => tracing.spansNamed(CHECKOUT);
const onlyCheckout = (): ReadableSpan => tracing.onlySpanNamed(CHECKOUT);

function checkoutOf(functionName: string): ReadableSpan {
  const span = checkouts().find((candidate) => candidate.attributes['code.function.name'] === functionName);
  if (span === undefined) throw new Error(`no checkout span from ${functionName}`);
  return span;
}

function requestSpan(name: string): ReadableSpan {
  const [span] = tracing.spansNamed(name);
  if (span === undefined) throw new Error(`no span named ${name}`);
  return span;
}

function expectChildOf(span: ReadableSpan, parentName: string): void {
  const parent = requestSpan(parentName);
  expect(span.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
  expect(span.spanContext().traceId).toBe(parent.spanContext().traceId);
}

function expectNoMisplacedCheckin(span: ReadableSpan): void {
  for (const name of MISPLACED_CHECKIN_EVENTS) expect(eventNames(span)).not.toContain(name);
}

function activeSpanId(): string | undefined {
  return trace.getActiveSpan()?.spanContext().spanId;
}

/** The rejection of `work` as a value (undefined if it resolved): failures are what these tests check. */
function failureOf(work: Promise<unknown>): Promise<SqlError | undefined> {
  return work.then(
    () => undefined,
    (error: SqlError) => error,
  );
}

/** A callback-API call as a promise of its result; rejects with the callback's error. */
function viaCallback<T>(call: (done: (error: SqlError | null, result?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => call((error, result) => (error ? reject(error) : resolve(result as T))));
}

function takeCallbackConnection(pool: CallbackPool): Promise<CallbackConnection> {
  return viaCallback<CallbackConnection>((done) => pool.getConnection(done));
}

function releaseCallbackConnection(connection: CallbackConnection): Promise<void> {
  return new Promise<void>((resolve) => connection.release(() => resolve()));
}

async function endPools(): Promise<void> {
  const ending = promisePools.splice(0).map((pool) => (pool.closed ? undefined : pool.end().catch(() => undefined)));
  for (const pool of callbackPools.splice(0)) {
    if (!pool.closed) ending.push(new Promise<void>((resolve) => pool.end(() => resolve())));
  }
  await Promise.all(ending);
}

/** Foreign-use counter points by the call site that took the lease. */
async function foreignUseCount(functionName: string): Promise<number> {
  const points = await tracing.metricPoints(FOREIGN);
  return points
    .filter((point) => point.attributes['code.function.name'] === functionName)
    .reduce((sum, point) => sum + Number(point.value), 0);
}

async function timeoutCount(poolName: string): Promise<number> {
  const points = await tracing.metricPoints('db.client.connection.timeouts');
  return points
    .filter((point) => point.attributes['db.client.connection.pool.name'] === poolName)
    .reduce((sum, point) => sum + Number(point.value), 0);
}

function poolName(): string {
  const { host, port, database } = mariadbOptions();
  return `${host}:${port}/${database}`;
}

beforeEach(() => tracing.exporter.reset());
afterEach(endPools);
afterAll(() => tracing.instrumentation.disable());

describeWithMariaDb('mariadb: promise API checkouts', () => {
  it('getConnection(): one span from request to release, child of the caller, with the call site', async () => {
    const pool = newPool();
    async function loadCustomer() {
      const connection = await pool.getConnection();
      await connection.query('SELECT 1');
      await connection.release();
    }
    await tracing.inRequest('GET /customer', loadCustomer);

    const span = onlyCheckout();
    expectCheckedIn(span);
    expectChildOf(span, 'GET /customer');
    expect(span.attributes).toMatchObject({
      'pool.library': 'mariadb',
      'db.system.name': 'mariadb',
      'server.address': mariadbOptions().host,
      'server.port': mariadbOptions().port,
      'db.namespace': mariadbOptions().database,
      'db.client.connection.pool.name': poolName(),
      'code.function.name': 'loadCustomer',
    });
    expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
    expect(span.attributes['code.line.number']).toBeGreaterThan(0);
    // The connector's own frames come first (the front-end calls its internal pool), then the app.
    expect(String(span.attributes['code.stacktrace'])).toMatch(new RegExp(`loadCustomer .*${THIS_FILE}:\\d+`));
    expect(String(span.attributes['code.stacktrace'])).not.toMatch(/instrumentation-pool-leak[/\\]src/);
    expect(span.attributes['pool.checkin.destroyed']).toBeUndefined();
    expectNoMisplacedCheckin(span);
  });

  it('end(), close() and Symbol.asyncDispose give the connection back like release()', async () => {
    const pool = newPool();
    const giveBack: ((connection: PoolConnection) => Promise<void>)[] = [
      (connection) => connection.end(),
      (connection) => connection.close(),
    ];
    // `await using` support arrived in 3.5.
    const probe = await pool.getConnection();
    if (typeof probe[Symbol.asyncDispose] === 'function') giveBack.push((connection) => connection[Symbol.asyncDispose]());
    await probe.release();
    tracing.exporter.reset();
    await tracing.inRequest('GET /forms', async () => {
      for (const form of giveBack) await form(await pool.getConnection());
    });
    const spans = checkouts();
    expect(spans).toHaveLength(giveBack.length);
    for (const span of spans) {
      expectCheckedIn(span);
      expectNoMisplacedCheckin(span);
    }
    expect(openLeaseCount(tracing.instrumentation)).toBe(0);
  });

  it('destroy() ends the span as destroyed; the pool replaces the connection', async () => {
    const pool = newPool();
    const connection = await pool.getConnection();
    connection.destroy();
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
    await until('the pool to refill', () => pool.totalConnections() === 2);
  });

  it('pool.query(), pool.execute(), pool.batch(): one span each, at the caller, released by the pool itself', async () => {
    const pool = newPool();
    await pool.query('CREATE TABLE IF NOT EXISTS adapter_batch (id INT)');
    tracing.exporter.reset();
    async function totalsByQuery() {
      return pool.query('SELECT 40 + 2 AS answer');
    }
    async function totalsByExecute() {
      return pool.execute('SELECT ? + 1 AS answer', [41]);
    }
    async function insertByBatch() {
      return pool.batch('INSERT INTO adapter_batch (id) VALUES (?)', [[1], [2]]);
    }
    const [queried, executed] = await tracing.inRequest('GET /totals', async () => [
      await totalsByQuery(),
      await totalsByExecute(),
      await insertByBatch(),
    ]);
    // Integer arithmetic comes back as BigInt: compare by value.
    const answers = (rows: unknown) => (rows as { answer: unknown }[]).map((row) => Number(row.answer));
    expect(answers(queried)).toEqual([42]);
    expect(answers(executed)).toEqual([42]);
    for (const name of ['totalsByQuery', 'totalsByExecute', 'insertByBatch']) {
      const span = checkoutOf(name);
      expectCheckedIn(span);
      expectChildOf(span, 'GET /totals');
      expectNoMisplacedCheckin(span);
      expect(String(span.attributes['code.stacktrace'])).toContain('node_modules/mariadb');
    }
  });

  it('a PoolCluster checkout is a span of the node pool it came from', async () => {
    const cluster = context.with(ROOT_CONTEXT, () => mariadb.createPoolCluster());
    cluster.add('primary', { ...mariadbOptions(), connectionLimit: 1 });
    try {
      async function readFromCluster() {
        const connection = await cluster.getConnection();
        await connection.query('SELECT 1');
        await connection.release();
      }
      await tracing.inRequest('GET /cluster', readFromCluster);
    } finally {
      await cluster.end();
    }
    const span = onlyCheckout();
    expectCheckedIn(span);
    expectChildOf(span, 'GET /cluster');
    expect(span.attributes['code.function.name']).toBe('readFromCluster');
    expect(span.attributes['db.client.connection.pool.name']).toBe(poolName());
  });
});

describeWithMariaDb('mariadb: callback API checkouts', () => {
  // First in the file to use the callback API: no callback connection has been handed out yet, so
  // the adapter has not met the callback connection class; the pool's own query must not need it.
  it('pool.query(sql, cb) and pool.execute(sql, cb): callbacks in the caller context, one span each at the caller', async () => {
    const pool = newCallbackPool();
    const seen: Record<string, string | undefined> = {};
    function countByQuery(done: (error: SqlError | null, rows?: unknown) => void) {
      pool.query('SELECT 7 AS n', (error: SqlError | null, rows: unknown) => {
        seen.query = activeSpanId();
        done(error, rows);
      });
    }
    function countByExecute(done: (error: SqlError | null, rows?: unknown) => void) {
      pool.execute('SELECT ? AS n', [8], (error: SqlError | null, rows: unknown) => {
        seen.execute = activeSpanId();
        done(error, rows);
      });
    }
    const rows = await tracing.inRequest('GET /count', async () => [await viaCallback(countByQuery), await viaCallback(countByExecute)]);
    expect(rows).toEqual([[{ n: 7 }], [{ n: 8 }]]);
    const request = requestSpan('GET /count').spanContext().spanId;
    expect(seen).toEqual({ query: request, execute: request });
    for (const name of ['countByQuery', 'countByExecute']) {
      const span = checkoutOf(name);
      expectCheckedIn(span);
      expectChildOf(span, 'GET /count');
      expectNoMisplacedCheckin(span);
    }
  });

  it('getConnection(cb): the callback runs in the caller context; release(cb) ends the span and calls back', async () => {
    const pool = newCallbackPool();
    const seen: { callback?: string | undefined; released?: boolean } = {};
    function reserveSeat(done: () => void) {
      pool.getConnection((error, connection) => {
        expect(error).toBeNull();
        seen.callback = activeSpanId();
        connection!.release(() => {
          seen.released = true;
          done();
        });
      });
    }
    await tracing.inRequest('GET /seat', () => new Promise<void>((resolve) => reserveSeat(resolve)));
    expect(seen.callback).toBe(requestSpan('GET /seat').spanContext().spanId);
    expect(seen.released).toBe(true);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expectChildOf(span, 'GET /seat');
    expect(span.attributes['code.function.name']).toBe('reserveSeat');
  });

  it('conn.query(sql, cb) and a transaction: callbacks in the caller context, release() inside them is a normal checkin', async () => {
    const pool = newCallbackPool();
    const seenIn: Record<string, string | undefined> = {};
    await tracing.inRequest('POST /transfer', async () => {
      const connection = await takeCallbackConnection(pool);
      await viaCallback((done) => connection.beginTransaction(done));
      await new Promise<void>((resolve, reject) => {
        connection.query('SELECT 1 AS one', (error: SqlError | null) => {
          seenIn.query = activeSpanId();
          if (error) reject(error);
          else
            connection.execute('SELECT ? AS two', [2], (executeError: SqlError | null) => {
              seenIn.execute = activeSpanId();
              if (executeError) reject(executeError);
              else
                connection.commit((commitError: SqlError | null) => {
                  seenIn.commit = activeSpanId();
                  // The usual callback style: give the connection back from the last callback.
                  connection.release(() => (commitError ? reject(commitError) : resolve()));
                });
            });
        });
      });
    });
    const request = requestSpan('POST /transfer').spanContext().spanId;
    expect(seenIn).toEqual({ query: request, execute: request, commit: request });
    const span = onlyCheckout();
    expectCheckedIn(span);
    expectNoMisplacedCheckin(span);
    expect(eventNames(span)).not.toContain(FOREIGN);
  });

});

describeWithMariaDb('mariadb: context through the wait queue', () => {
  it('waiters queued behind a held connection continue in their own context (promise and callback APIs)', async () => {
    const pool = newPool({ connectionLimit: 1 });
    const callbackPool = newCallbackPool({ connectionLimit: 1 });
    const holder = await pool.getConnection();
    const callbackHolder = await takeCallbackConnection(callbackPool);
    tracing.exporter.reset();
    const seen: Record<string, string | undefined> = {};
    const promiseWaiters = [1, 2].map((index) =>
      tracing.inRequest(`waiter-promise-${index}`, async () => {
        const connection = await pool.getConnection();
        seen[`promise-${index}`] = activeSpanId();
        await connection.release();
      }),
    );
    const callbackWaiter = tracing.inRequest('waiter-callback', async () => {
      const connection = await takeCallbackConnection(callbackPool);
      seen.callback = activeSpanId();
      await releaseCallbackConnection(connection);
    });
    await until('the waiters to queue', () => pool.taskQueueSize() === 2 && callbackPool.taskQueueSize() === 1);
    // Released from an unrelated request: the connector answers the waiters in this context.
    await tracing.tracer.startActiveSpan('releaser', async (span) => {
      await holder.release();
      await releaseCallbackConnection(callbackHolder);
      span.end();
    });
    await Promise.all([...promiseWaiters, callbackWaiter]);

    expect(seen).toEqual({
      'promise-1': requestSpan('waiter-promise-1').spanContext().spanId,
      'promise-2': requestSpan('waiter-promise-2').spanContext().spanId,
      callback: requestSpan('waiter-callback').spanContext().spanId,
    });
    const pendingAtRequest = (parent: string) =>
      checkouts().find((span) => span.parentSpanContext?.spanId === requestSpan(parent).spanContext().spanId)?.attributes[
        'pool.pending_at_request'
      ];
    expect(pendingAtRequest('waiter-promise-1')).toBe(0);
    expect(pendingAtRequest('waiter-promise-2')).toBe(1);
    expect(pendingAtRequest('waiter-callback')).toBe(0);
    for (const span of checkouts()) expectNoMisplacedCheckin(span);
  });
});

describeWithMariaDb('mariadb: failures', () => {
  it('acquireTimeout on a full pool: ERROR span with the exception, the timeouts metric (promise and callback)', async () => {
    const pool = newPool({ connectionLimit: 1, acquireTimeout: 300 });
    const callbackPool = newCallbackPool({ connectionLimit: 1, acquireTimeout: 300 });
    const holder = await pool.getConnection();
    const callbackHolder = await takeCallbackConnection(callbackPool);
    tracing.exporter.reset();
    const before = await timeoutCount(poolName());

    const error = await tracing.inRequest('GET /starved', () => failureOf(pool.getConnection()));
    const callbackError = await tracing.inRequest('GET /starved-callback', () => failureOf(takeCallbackConnection(callbackPool)));
    await holder.release();
    await releaseCallbackConnection(callbackHolder);

    for (const [failure, request] of [
      [error, 'GET /starved'],
      [callbackError, 'GET /starved-callback'],
    ] as const) {
      expect(failure?.code).toBe('ER_GET_CONNECTION_TIMEOUT');
      const span = checkouts().find((candidate) => candidate.parentSpanContext?.spanId === requestSpan(request).spanContext().spanId)!;
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(span.attributes['error.type']).toBe('ER_GET_CONNECTION_TIMEOUT');
      expect(eventNamed(span, 'exception')?.attributes?.['exception.message']).toBe(failure?.message);
      expect(span.attributes['pool.pending_at_request']).toBe(0);
      expect(span.attributes['pool.held_ms']).toBeUndefined();
    }
    expect((await timeoutCount(poolName())) - before).toBe(2);
  });

  it('pool.end() while requests wait: they fail with the connector error, spans ERROR, no unhandled rejection', async () => {
    const rejections = collectUnhandledRejections();
    try {
      const pool = newPool({ connectionLimit: 1 });
      const callbackPool = newCallbackPool({ connectionLimit: 1 });
      const holder = await pool.getConnection();
      const callbackHolder = await takeCallbackConnection(callbackPool);
      tracing.exporter.reset();
      const waiter = tracing.inRequest('GET /waiting', () => failureOf(pool.getConnection()));
      const callbackWaiter = tracing.inRequest('GET /waiting-callback', () => failureOf(takeCallbackConnection(callbackPool)));
      await until('the waiters to queue', () => pool.taskQueueSize() === 1 && callbackPool.taskQueueSize() === 1);
      const ended = pool.end();
      const callbackEnded = new Promise<void>((resolve) => callbackPool.end(() => resolve()));
      const [failure, callbackFailure] = await Promise.all([waiter, callbackWaiter]);
      await holder.release();
      await releaseCallbackConnection(callbackHolder);
      await Promise.all([ended, callbackEnded]);
      await sleep(20);

      expect(failure?.code).toBe('ER_CLOSING_POOL');
      expect(callbackFailure?.code).toBe('ER_CLOSING_POOL');
      const failed = checkouts().filter((span) => span.status.code === SpanStatusCode.ERROR);
      expect(failed).toHaveLength(2);
      for (const span of failed) {
        expect(span.attributes['error.type']).toBe('ER_CLOSING_POOL');
        expect(eventNames(span)).not.toContain('pool.exhausted');
      }
      expect(openLeaseCount(tracing.instrumentation)).toBe(0);
      expect(rejections.reasons).toEqual([]);
    } finally {
      rejections.stop();
    }
  });

  it('getConnection on an ended pool: the connector error, unchanged, ends the span with ERROR (promise and callback)', async () => {
    const pool = newPool();
    const callbackPool = newCallbackPool();
    await pool.end();
    await new Promise<void>((resolve) => callbackPool.end(() => resolve()));
    const failure = await failureOf(pool.getConnection());
    const callbackFailure = await failureOf(takeCallbackConnection(callbackPool));
    expect(failure?.code).toBe('ER_POOL_ALREADY_CLOSED');
    expect(callbackFailure?.code).toBe('ER_POOL_ALREADY_CLOSED');
    const spans = checkouts();
    expect(spans).toHaveLength(2);
    for (const span of spans) {
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(span.attributes['error.type']).toBe('ER_POOL_ALREADY_CLOSED');
    }
    expect(openLeaseCount(tracing.instrumentation)).toBe(0);
  });

  it('a server-side KILL of a leased connection ends its span; the later release() is accepted (promise and callback)', async () => {
    const rejections = collectUnhandledRejections();
    const killer = await mariadb.createConnection(mariadbOptions());
    try {
      const pool = newPool();
      const callbackPool = newCallbackPool();
      const connection = await tracing.inRequest('GET /killed', () => pool.getConnection());
      const callbackConnection = await tracing.inRequest('GET /killed-callback', () => takeCallbackConnection(callbackPool));
      await killer.query(`KILL ${connection.threadId}`);
      await killer.query(`KILL ${callbackConnection.threadId!}`);
      await until('the sockets to close', () => !connection.isValid() && !callbackConnection.isValid());
      await until('the leases to end', () => openLeaseCount(tracing.instrumentation) === 0);

      const failure = await failureOf(connection.query('SELECT 1'));
      expect(failure?.code).toBe('ER_CMD_CONNECTION_CLOSED');
      await connection.release();
      await releaseCallbackConnection(callbackConnection);
      await sleep(20);

      const spans = checkouts();
      expect(spans).toHaveLength(2);
      for (const span of spans) {
        expectCheckedIn(span);
        expect(span.attributes['pool.checkin.destroyed']).toBe(true);
        expectNoMisplacedCheckin(span);
      }
      for (const request of ['GET /killed', 'GET /killed-callback']) {
        expect(eventNames(requestSpan(request))).not.toContain('pool.release.invalid');
      }
      expect(tracing.spansNamed('mariadb release.invalid')).toEqual([]);
      expect(openLeaseCount(tracing.instrumentation)).toBe(0);
      expect(rejections.reasons).toEqual([]);
    } finally {
      rejections.stop();
      await killer.end();
    }
  });

  it('an unreachable server: the checkout times out with the connect error as cause, ERROR without pool.exhausted', async () => {
    const pool = newPool({ port: 1, acquireTimeout: 500 });
    const failure = await tracing.inRequest('GET /down', () => failureOf(pool.getConnection()));
    expect(failure?.code).toBe('ER_GET_CONNECTION_TIMEOUT');
    const span = onlyCheckout();
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(eventNames(span)).toEqual(['exception']);
  });
});

describeWithMariaDb('mariadb: invalid releases', () => {
  /** What the connector does on its own: the instrumentation must not change it. */
  async function uninstrumented<T>(scenario: (pool: Pool) => Promise<T>): Promise<T> {
    tracing.instrumentation.disable();
    try {
      return await scenario(newPool());
    } finally {
      tracing.instrumentation.enable();
    }
  }

  async function settle(work: () => Promise<unknown>): Promise<string> {
    return work().then(
      () => 'resolved',
      (error: Error) => `rejected: ${error.message}`,
    );
  }

  async function doubleRelease(pool: Pool): Promise<string[]> {
    const connection = await pool.getConnection();
    return [await settle(() => connection.release()), await settle(() => connection.release())];
  }

  async function releaseAfterDestroy(pool: Pool): Promise<string> {
    const connection = await pool.getConnection();
    connection.destroy();
    return settle(() => connection.release());
  }

  it('double release (promise): same outcome as without instrumentation, pool.release.invalid on the active span', async () => {
    const expected = await uninstrumented(doubleRelease);
    tracing.exporter.reset();
    const outcome = await tracing.inRequest('POST /double', () => doubleRelease(newPool()));
    expect(outcome).toEqual(expected);
    expectCheckedIn(onlyCheckout());
    const event = eventNamed(requestSpan('POST /double'), 'pool.release.invalid');
    expect(event?.attributes?.['pool.release.reason']).toBe('double_release');
    expect(String(event?.attributes?.['pool.release.stacktrace'])).toContain(THIS_FILE);
  });

  it('release after destroy (promise): same outcome as without instrumentation, reason "destroyed"', async () => {
    const expected = await uninstrumented(releaseAfterDestroy);
    tracing.exporter.reset();
    const outcome = await tracing.inRequest('POST /destroyed', () => releaseAfterDestroy(newPool()));
    expect(outcome).toEqual(expected);
    const event = eventNamed(requestSpan('POST /destroyed'), 'pool.release.invalid');
    expect(event?.attributes?.['pool.release.reason']).toBe('destroyed');
  });

  it('double release (callback) with no active span: both callbacks run, recorded on a short span linked to the checkout', async () => {
    const pool = newCallbackPool();
    const connection = await takeCallbackConnection(pool);
    let calls = 0;
    await new Promise<void>((resolve) => {
      connection.release(() => (calls += 1));
      connection.release(() => {
        calls += 1;
        resolve();
      });
    });
    expect(calls).toBe(2);
    const [invalid] = tracing.spansNamed('mariadb release.invalid');
    expect(invalid).toBeDefined();
    expect(invalid!.links[0]?.context.spanId).toBe(onlyCheckout().spanContext().spanId);
    expect(eventNamed(invalid!, 'pool.release.invalid')?.attributes?.['pool.release.reason']).toBe('double_release');
  });
});

describeWithMariaDb('mariadb: pool.exhausted (#6)', () => {
  it('a checkout that times out names both holders, longest-held first, with file:line and held time', async () => {
    const pool = newPool({ connectionLimit: 2, acquireTimeout: 300 });
    await until('the pool to open', () => pool.idleConnections() === 2);
    const held: PoolConnection[] = [];
    async function holdA() {
      held.push(await pool.getConnection());
    }
    async function holdB() {
      held.push(await pool.getConnection());
    }
    await tracing.inRequest('GET /a', holdA);
    await sleep(HOLD_HEADSTART_MS);
    await tracing.inRequest('GET /b', holdB);
    const failure = await tracing.inRequest('GET /starved', () => failureOf(pool.getConnection()));
    await Promise.all(held.map((connection) => connection.release()));

    expect(failure?.code).toBe('ER_GET_CONNECTION_TIMEOUT');
    const failed = checkouts().find((span) => span.status.code === SpanStatusCode.ERROR)!;
    expect(eventNames(failed)).toEqual(['pool.exhausted', 'exception']);
    const exhausted = eventNamed(failed, 'pool.exhausted')!.attributes!;
    const holders = exhausted['pool.holders'] as string[];
    expect(holders).toHaveLength(2);
    holders.forEach((holder, index) => {
      const name = index === 0 ? 'holdA' : 'holdB';
      const checkout = checkoutOf(name);
      expect(holder).toMatch(new RegExp(`^${name} \\(.*${THIS_FILE}:\\d+\\)( ← .*)? held \\d+ ms — (busy|idle) \\d+ ms( in transaction)?(, last .+)?$`));
      // The call path names files relative to the working directory.
      const file = relative(process.cwd(), String(checkout.attributes['code.file.path']));
      expect(holder.startsWith(`${name} (${file}:${String(checkout.attributes['code.line.number'])})`)).toBe(true);
    });
    const heldMs = holders.map((holder) => Number(/held (\d+) ms/.exec(holder)![1]));
    expect(heldMs[0]! - heldMs[1]!).toBeGreaterThanOrEqual(HOLD_HEADSTART_MS - 5);
    expect(heldMs[1]).toBeGreaterThanOrEqual(290);
    expect(exhausted['pool.holders.count']).toBe(2);
    expect(exhausted['db.client.connection.max']).toBe(2);
    expect(exhausted['pool.pending']).toBe(0);
  });
});

describeWithMariaDb('mariadb: pool.use.foreign_context (#6)', () => {
  it('promise API: a statement from another trace is one event with its ids and stack, a link back, the counter', async () => {
    const pool = newPool();
    let shared: PoolConnection | undefined;
    async function beginOrder() {
      shared = await pool.getConnection();
      await shared.query('SELECT 1');
    }
    async function addLineFromOtherRequest() {
      await shared!.query('SELECT 2');
      await shared!.execute('SELECT ?', [3]);
    }
    let foreignSpan: Span | undefined;
    await inRootSpan(tracing, 'POST /orders', beginOrder);
    await inRootSpan(tracing, 'POST /orders/lines', async (span) => {
      foreignSpan = span;
      await addLineFromOtherRequest();
    });
    await shared!.release();

    const checkout = checkoutOf('beginOrder');
    const events = checkout.events.filter((event) => event.name === FOREIGN);
    expect(events).toHaveLength(1);
    const attributes = events[0]!.attributes!;
    expect(attributes['pool.use.trace_id']).toBe(foreignSpan!.spanContext().traceId);
    expect(attributes['pool.use.span_id']).toBe(foreignSpan!.spanContext().spanId);
    expect(String(attributes['pool.use.stacktrace'])).toMatch(new RegExp(`addLineFromOtherRequest .*${THIS_FILE}:\\d+`));
    expect(requestSpan('POST /orders/lines').links.map((link) => link.context.spanId)).toEqual([checkout.spanContext().spanId]);
    expect(await foreignUseCount('beginOrder')).toBe(1);
  });

  it('callback API: conn.query(sql, cb) and conn.execute from another trace are reported the same way', async () => {
    const pool = newCallbackPool();
    let shared: CallbackConnection | undefined;
    function beginCallbackOrder(done: (error: SqlError | null) => void) {
      pool.getConnection((error, connection) => {
        shared = connection;
        done(error);
      });
    }
    function addCallbackLine(done: (error: SqlError | null) => void) {
      shared!.query('SELECT 2', (error: SqlError | null) => done(error));
    }
    function addCallbackLineByExecute(done: (error: SqlError | null) => void) {
      shared!.execute('SELECT ?', [3], (error: SqlError | null) => done(error));
    }
    await inRootSpan(tracing, 'POST /cb-orders', () => viaCallback(beginCallbackOrder));
    const queryTrace = await inRootSpan(tracing, 'POST /cb-orders/query', async (span) => {
      await viaCallback(addCallbackLine);
      return span.spanContext().traceId;
    });
    const executeTrace = await inRootSpan(tracing, 'POST /cb-orders/execute', async (span) => {
      await viaCallback(addCallbackLineByExecute);
      return span.spanContext().traceId;
    });
    await releaseCallbackConnection(shared!);

    const checkout = checkoutOf('beginCallbackOrder');
    const events = checkout.events.filter((event) => event.name === FOREIGN);
    expect(events.map((event) => event.attributes!['pool.use.trace_id'])).toEqual([queryTrace, executeTrace]);
    expect(String(events[0]!.attributes!['pool.use.stacktrace'])).toMatch(new RegExp(`addCallbackLine .*${THIS_FILE}:\\d+`));
    expect(String(events[1]!.attributes!['pool.use.stacktrace'])).toMatch(new RegExp(`addCallbackLineByExecute .*${THIS_FILE}:\\d+`));
    expect(await foreignUseCount('beginCallbackOrder')).toBe(2);
  });

  it('statements in the lease own trace never fire: child spans, callbacks, timers, pool.query', async () => {
    const pool = newPool();
    const callbackPool = newCallbackPool();
    await inRootSpan(tracing, 'GET /own', async () => {
      const connection = await pool.getConnection();
      await connection.query('SELECT 1');
      await tracing.tracer.startActiveSpan('child', async (child) => {
        await connection.execute('SELECT 2');
        child.end();
      });
      await new Promise<void>((resolve, reject) => {
        setTimeout(() => connection.query('SELECT 3').then(() => resolve(), reject), 5);
      });
      await pool.query('SELECT 4');
      await connection.release();

      const callbackConnection = await takeCallbackConnection(callbackPool);
      await new Promise<void>((resolve, reject) => {
        // Nested callbacks: the inner statement is issued from the outer one's callback.
        callbackConnection.query('SELECT 5', (error: SqlError | null) => {
          if (error) reject(error);
          else callbackConnection.query('SELECT 6', (inner: SqlError | null) => (inner ? reject(inner) : resolve()));
        });
      });
      await releaseCallbackConnection(callbackConnection);
    });
    expect(checkouts()).toHaveLength(3);
    for (const checkout of checkouts()) expect(eventNames(checkout)).not.toContain(FOREIGN);
  });

  it('a lease taken with no active span never fires, whatever trace uses it later', async () => {
    const pool = newPool();
    const connection = await context.with(ROOT_CONTEXT, () => pool.getConnection());
    await inRootSpan(tracing, 'GET /later', () => connection.query('SELECT 1'));
    await connection.release();
    expect(eventNames(onlyCheckout())).toEqual(['pool.acquired']);
  });
});

describeWithMariaDb('mariadb: no secrets in telemetry', () => {
  it('user name, password and connection string never appear in attributes', async () => {
    const { host, port, user, password, database } = mariadbOptions();
    const connectionString = `mariadb://${user}:${password}@${host}:${port}/${database}?connectionLimit=1`;
    const pool = context.with(ROOT_CONTEXT, () => mariadb.createPool(connectionString));
    promisePools.push(pool);
    await pool.query('SELECT 1');
    const text = allAttributeText(tracing.exporter.getFinishedSpans());
    expect(text).toContain(`${host}:${port}/${database}`);
    expect(text).not.toContain(password);
    expect(text).not.toContain(connectionString);
    expect(text).not.toContain(`${user}:`);
    expect(onlyCheckout().attributes['db.client.connection.pool.name']).toBe(poolName());
  });
});

describeWithMariaDb('mariadb: metrics', () => {
  it('the pool counters feed db.client.connection.count, .max and .pending_requests', async () => {
    const pool = newPool({ connectionLimit: 3 });
    await until('the pool to open', () => pool.idleConnections() === 3);
    const connection = await pool.getConnection();
    const points = async (name: string) =>
      (await tracing.metricPoints(name)).filter((point) => point.attributes['db.client.connection.pool.name'] === poolName());
    const counts = await points('db.client.connection.count');
    expect(counts.find((point) => point.attributes['db.client.connection.state'] === 'used')?.value).toBe(1);
    expect(counts.find((point) => point.attributes['db.client.connection.state'] === 'idle')?.value).toBe(2);
    expect((await points('db.client.connection.max')).map((point) => point.value)).toContain(3);
    expect((await points('db.client.connection.pending_requests')).map((point) => point.value)).toContain(0);
    await connection.release();
  });
});

describeWithMariaDb('mariadb: disable and enable', () => {
  it('disable() restores the connector; enable() patches again', async () => {
    const internalPool = internalPoolPrototype(mariadb.createPool);
    const callbackInternalPool = internalPoolPrototype(mariadbCallback.createPool);
    const pool = newPool();
    let rawConnection: object | undefined;
    pool.on('acquire', (connection: object) => (rawConnection = connection));
    await (await pool.getConnection()).release();
    const rawPrototype = Object.getPrototypeOf(rawConnection) as Record<string, unknown>;
    const patched = () => [
      ...['getConnection', '_handleRelease', 'release', '_endLeak'].map((name) => isWrapped(internalPool[name])),
      isWrapped(callbackInternalPool['getConnection']),
      ...['query', 'prepareExecute', 'batch', 'changeTransaction'].map((name) => isWrapped(rawPrototype[name])),
    ];
    expect(patched().every(Boolean)).toBe(true);

    tracing.instrumentation.disable();
    try {
      expect(patched().some(Boolean)).toBe(false);
      tracing.exporter.reset();
      await newPool().query('SELECT 1');
      expect(checkouts()).toHaveLength(0);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(isWrapped(internalPool['getConnection'])).toBe(true);
    await newPool().query('SELECT 1');
    expectCheckedIn(onlyCheckout());
  });
});
