// pg-pool adapter against a real PostgreSQL (started by test/setup/postgres.ts) and the real SDK.
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { isPatchedByPoolLeak } from '../../src/adapters/kit/patcher';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setupTracing } from '../support/tracing';
import { loadPg, postgresConfig } from '../support/pg';
import { allAttributeText, eventNamed, expectCheckedIn } from '../support/spans';

const tracing = setupTracing();
const pg = loadPg();
const CHECKOUT = 'pg-pool checkout';
const THIS_FILE = 'pg-pool.test.ts';

const pools: InstanceType<typeof pg.Pool>[] = [];
function newPool(options: Partial<import('pg').PoolConfig> = {}) {
  const pool = new pg.Pool({ ...postgresConfig(), max: 2, ...options });
  pools.push(pool);
  return pool;
}

function checkouts(): ReadableSpan[] {
  return tracing.spansNamed(CHECKOUT);
}

function onlyCheckout(): ReadableSpan {
  const spans = checkouts();
  expect(spans.map((span) => span.name)).toEqual([CHECKOUT]);
  return spans[0]!;
}


beforeEach(() => tracing.exporter.reset());
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => (pool.ending ? undefined : pool.end())));
});
afterAll(() => tracing.instrumentation.disable());

describe('checkout forms', () => {
  it('pool.connect() promise form: one span from request to checkin, child of the caller', async () => {
    const pool = newPool();
    await tracing.inRequest('GET /promise', async () => {
      const client = await pool.connect();
      await client.query('SELECT 1');
      client.release();
    });
    const span = onlyCheckout();
    expectCheckedIn(span);
    const request = tracing.spansNamed('GET /promise')[0]!;
    expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(span.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(span.attributes['pool.library']).toBe('pg-pool');
    expect(span.attributes['db.system.name']).toBe('postgresql');
    expect(span.attributes['server.address']).toBe('127.0.0.1');
    expect(span.attributes['server.port']).toBe(postgresConfig().port);
    expect(span.attributes['db.namespace']).toBe('postgres');
    expect(span.attributes['db.client.connection.pool.name']).toBe(`127.0.0.1:${postgresConfig().port}/postgres`);
  });

  it('pool.connect(cb) callback form: callback gets (err, client, release) and runs in the caller context', async () => {
    const pool = newPool();
    await tracing.inRequest('GET /callback', () => {
      const expected = trace.getActiveSpan();
      return new Promise<void>((resolve, reject) => {
        pool.connect((error, client, release) => {
          try {
            expect(error).toBeUndefined();
            expect(trace.getActiveSpan()).toBe(expected);
            expect(typeof release).toBe('function');
            release();
            resolve();
          } catch (failure) {
            reject(failure);
          }
        });
      });
    });
    expectCheckedIn(onlyCheckout());
  });

  it('pool.query(): the span points at the caller of pool.query, not at pg-pool', async () => {
    const pool = newPool();
    async function loadInvoiceTotals() {
      return pool.query('SELECT 41 + 1 AS answer');
    }
    const result = await tracing.inRequest('GET /query', loadInvoiceTotals);
    expect(result.rows).toEqual([{ answer: 42 }]);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['code.function.name']).toBe('loadInvoiceTotals');
    expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
    expect(String(span.attributes['code.stacktrace'])).toContain('node_modules/pg-pool');
  });

  it('pool.query(text, cb): the callback runs in the caller context', async () => {
    const pool = newPool();
    const rows = await tracing.inRequest('GET /query-cb', () => {
      const expected = trace.getActiveSpan();
      return new Promise<unknown[]>((resolve, reject) => {
        pool.query('SELECT 7 AS n', (error, result) => {
          if (trace.getActiveSpan() !== expected) reject(new Error('callback lost the caller context'));
          else if (error) reject(error);
          else resolve(result.rows);
        });
      });
    });
    expect(rows).toEqual([{ n: 7 }]);
    expectCheckedIn(onlyCheckout());
  });
});

describe('stack and call site', () => {
  it('records the application frame: function, this file, line and column', async () => {
    const pool = newPool();
    async function takeConnectionForReport() {
      const client = await pool.connect();
      client.release();
    }
    await takeConnectionForReport();
    const span = onlyCheckout();
    expect(span.attributes['code.function.name']).toBe('takeConnectionForReport');
    expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
    expect(span.attributes['code.line.number']).toBeGreaterThan(0);
    expect(span.attributes['code.column.number']).toBeGreaterThan(0);
    const stack = String(span.attributes['code.stacktrace']);
    expect(stack.split('\n')[0]).toContain('takeConnectionForReport');
    expect(stack).not.toMatch(/instrumentation-pool-leak[/\\]src/);
  });

  it('a deep recursive caller: the first window by default, the stack capped at the frame count with fullStacks', async () => {
    const pool = newPool();
    async function descend(depth: number): Promise<void> {
      if (depth === 0) {
        const client = await pool.connect();
        client.release();
        return;
      }
      await descend(depth - 1);
    }
    // The connect() call happens synchronously inside 80 nested descend() frames. By default
    // only the first window is captured: it already holds the 3-frame call path.
    await descend(80);
    const windowed = onlyCheckout();
    expect(String(windowed.attributes['code.stacktrace']).split('\n').every((frame) => frame.includes('descend'))).toBe(true);
    expect(String(windowed.attributes['pool.call_path']).split(' ← ').map((entry) => entry.split(' ')[0])).toEqual([
      'descend',
      'descend',
      'descend',
    ]);
    // fullStacks: the whole stack, capped at stackFrames (50).
    tracing.exporter.reset();
    tracing.instrumentation.setConfig({ fullStacks: true });
    try {
      await descend(80);
    } finally {
      tracing.instrumentation.setConfig({});
    }
    const stack = String(onlyCheckout().attributes['code.stacktrace']);
    const frames = stack.split('\n');
    expect(frames).toHaveLength(50);
    expect(frames.every((frame) => frame.trimStart().startsWith('at '))).toBe(true);
    expect(frames[0]).toContain('descend');
    expect(stack.length).toBeLessThanOrEqual(8192);
  });
});

describe('context through the wait queue', () => {
  it('a waiter queued behind another lease continues in its own context (promise and callback forms)', async () => {
    const pool = newPool({ max: 1 });
    const holder = await pool.connect();
    const seen: Record<string, string | undefined> = {};
    const promiseWaiter = tracing.inRequest('waiter-promise', async () => {
      const client = await pool.connect();
      seen.promise = trace.getActiveSpan()?.spanContext().spanId;
      client.release();
    });
    const callbackWaiter = tracing.inRequest('waiter-callback', () => {
      const expected = trace.getActiveSpan()?.spanContext().spanId;
      return new Promise<void>((resolve) => {
        pool.connect((error, client, release) => {
          seen.callback = trace.getActiveSpan()?.spanContext().spanId;
          seen.expectedCallback = expected;
          release();
          resolve();
        });
      });
    });
    // Release from an unrelated context: pg-pool hands the waiters this one unless we restore theirs.
    await tracing.tracer.startActiveSpan('releaser', async (span) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      holder.release();
      span.end();
    });
    await Promise.all([promiseWaiter, callbackWaiter]);
    const promiseRequest = tracing.spansNamed('waiter-promise')[0]!;
    const callbackRequest = tracing.spansNamed('waiter-callback')[0]!;
    expect(seen.promise).toBe(promiseRequest.spanContext().spanId);
    expect(seen.callback).toBe(callbackRequest.spanContext().spanId);
    expect(seen.callback).toBe(seen.expectedCallback);
    const waited = checkouts().filter((span) => span.attributes['pool.pending_at_request'] !== undefined);
    expect(waited.length).toBe(2);
  });
});

describe('failures', () => {
  it('a checkout that times out ends with status ERROR and an exception event', async () => {
    // The holder connects without a limit: a loaded machine may take longer than 100 ms to open a
    // connection. pg-pool reads the limit at each connect, so the waiter below gets the short one.
    const pool = newPool({ max: 1 });
    const holder = await pool.connect();
    pool.options.connectionTimeoutMillis = 100;
    tracing.exporter.reset();
    const error = await pool.connect().then(
      () => undefined,
      (failure: unknown) => failure as Error,
    );
    expect(error?.message).toBe('timeout exceeded when trying to connect');
    const span = onlyCheckout();
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.status.message).toBe('timeout exceeded when trying to connect');
    expect(eventNamed(span, 'exception')?.attributes?.['exception.message']).toBe('timeout exceeded when trying to connect');
    expect(span.attributes['pool.pending_at_request']).toBe(0);
    expect(span.attributes['pool.held_ms']).toBeUndefined();
    holder.release();
  });

  it('connect on an ended pool: same rejection, span ERROR', async () => {
    const pool = newPool();
    await pool.end();
    await expect(pool.connect()).rejects.toThrow('Cannot use a pool after calling end on the pool');
    expect(onlyCheckout().status.code).toBe(SpanStatusCode.ERROR);
  });

  it('a connect error (wrong port) reaches the callback unchanged and fails the span', async () => {
    const pool = newPool({ port: 1, connectionTimeoutMillis: 2000 });
    const error = await new Promise<Error | undefined>((resolve) => pool.connect((failure) => resolve(failure)));
    expect(error).toBeInstanceOf(Error);
    const span = onlyCheckout();
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['error.type']).toBe((error as Error & { code?: string }).code ?? 'Error');
  });
});

describe('release', () => {
  it('release(err) ends the span and the pool destroys the connection', async () => {
    const pool = newPool();
    const client = await pool.connect();
    expect(pool.totalCount).toBe(1);
    client.release(new Error('connection is in a bad state'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(pool.totalCount).toBe(0);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
  });

  it('release(true) also destroys; a plain release does not', async () => {
    const pool = newPool();
    const first = await pool.connect();
    first.release();
    const second = await pool.connect();
    second.release(true);
    const [plain, destroyed] = checkouts();
    expect(plain?.attributes['pool.checkin.destroyed']).toBeUndefined();
    expect(destroyed?.attributes['pool.checkin.destroyed']).toBe(true);
  });

  it('a client whose connection was closed is destroyed at its release, as pg-pool removes it', async () => {
    const pool = newPool();
    const client = await pool.connect();
    await (client as unknown as { end(): Promise<void> }).end();
    client.release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(pool.totalCount).toBe(0);
    expect(onlyCheckout().attributes['pool.checkin.destroyed']).toBe(true);
  });

  it('double release: pg-pool throws its own error, unchanged; pool.release.invalid is recorded', async () => {
    const pool = newPool();
    const thrown = await tracing.inRequest('GET /double', async () => {
      const client = await pool.connect();
      client.release();
      try {
        client.release();
        return undefined;
      } catch (error) {
        return error as Error;
      }
    });
    expect(thrown?.message).toBe('Release called on client which has already been released to the pool.');
    const request = tracing.spansNamed('GET /double')[0]!;
    const event = eventNamed(request, 'pool.release.invalid');
    expect(event?.attributes?.['pool.release.reason']).toBe('double_release');
    expect(String(event?.attributes?.['pool.release.stacktrace'])).toContain(THIS_FILE);
    expectCheckedIn(onlyCheckout());
  });

  it('double release with no active span: recorded on a short span linked to the checkout', async () => {
    const pool = newPool();
    const client = await pool.connect();
    client.release();
    expect(() => client.release()).toThrow('Release called on client which has already been released to the pool.');
    const [invalid] = tracing.spansNamed('pg-pool release.invalid');
    expect(invalid).toBeDefined();
    expect(invalid!.links[0]?.context.spanId).toBe(onlyCheckout().spanContext().spanId);
    expect(eventNamed(invalid!, 'pool.release.invalid')).toBeDefined();
  });
});

describe('no secrets in telemetry', () => {
  it('user name, password and connection string never appear in attributes', async () => {
    const { host, port, user, password, database } = postgresConfig();
    const connectionString = `postgres://${user}:${password}@${host}:${port}/${database}`;
    const pool = newPool({ connectionString, host: undefined, user: undefined, password: undefined });
    await pool.query('SELECT 1');
    const text = allAttributeText(tracing.exporter.getFinishedSpans());
    expect(text).toContain(`${host}:${port}/${database}`);
    expect(text).not.toContain(password);
    expect(text).not.toContain(connectionString);
    expect(text).not.toContain(`${user}:`);
  });
});

describe('disable and enable', () => {
  it('disable() restores pg-pool; enable() patches again', async () => {
    const Pool = Object.getPrototypeOf(pg.Pool.prototype).constructor as { prototype: { connect: unknown } };
    expect(isPatchedByPoolLeak(Pool.prototype.connect)).toBe(true);
    tracing.instrumentation.disable();
    try {
      expect(isPatchedByPoolLeak(Pool.prototype.connect)).toBe(false);
      const pool = newPool();
      await pool.query('SELECT 1');
      expect(checkouts()).toHaveLength(0);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(isPatchedByPoolLeak(Pool.prototype.connect)).toBe(true);
    const pool = newPool();
    await pool.query('SELECT 1');
    expect(checkouts()).toHaveLength(1);
  });
});

describe('unsampled', () => {
  it('with no active context the span is a root; the lease still works', async () => {
    const pool = newPool();
    await context.with(context.active(), async () => {
      const client = await pool.connect();
      client.release();
    });
    expect(onlyCheckout().parentSpanContext).toBeUndefined();
  });
});
