// tarn adapter against the real library (in-memory resources) and the real SDK.
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { isWrapped } from '@opentelemetry/instrumentation';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type * as TarnModule from 'tarn';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  delay,
  describeError,
  outcomeOf,
  requireLibrary,
  resourceFactory,
  unhandledRejectionsDuring,
  type Resource,
} from '../support/in-memory-resources';
import { lineOf } from '../support/source-lines';
import { childOf, eventNamed, eventNames, expectCheckedIn } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const tarn = requireLibrary<typeof TarnModule>('tarn');
const CHECKOUT = 'tarn checkout';
const THIS_FILE = 'tarn.test.ts';
/** tarn's TimeoutError sets no name; knex turns it into its own "Timeout acquiring a connection". */
const TIMEOUT = 'TimeoutError(Error): operation timed out for an unknown reason';

type Pool = TarnModule.Pool<Resource>;
type PoolOptions = Partial<ConstructorParameters<typeof tarn.Pool<Resource>>[0]>;
const pools: Pool[] = [];

function newPool(options: PoolOptions = {}): Pool {
  const factory = resourceFactory();
  const pool = new tarn.Pool<Resource>({
    create: () => factory.create(),
    destroy: (resource) => factory.destroy(resource),
    min: 0,
    max: 2,
    ...options,
  });
  pools.push(pool);
  return pool;
}

const checkouts = (): ReadableSpan[] => tracing.spansNamed(CHECKOUT);
const onlyCheckout = (): ReadableSpan => tracing.onlySpanNamed(CHECKOUT);

function failedCheckouts(): ReadableSpan[] {
  return checkouts().filter((span) => span.status.code === SpanStatusCode.ERROR);
}

const openLeaseCount = tracing.openLeaseCount;

async function timeoutCount(): Promise<number> {
  const points = await tracing.metricPoints('db.client.connection.timeouts');
  const point = points.find((candidate) => candidate.attributes['db.client.connection.pool.name'] === 'tarn');
  return (point?.value as number | undefined) ?? 0;
}

/** Runs `work` once with the instrumentation disabled and once enabled. */
async function withAndWithout<T>(work: () => Promise<T>): Promise<{ without: T; withIt: T }> {
  tracing.instrumentation.disable();
  let without: T;
  try {
    without = await work();
  } finally {
    tracing.instrumentation.enable();
  }
  return { without, withIt: await work() };
}

beforeEach(() => tracing.exporter.reset());
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.destroy()));
  expect(openLeaseCount()).toBe(0);
});
afterAll(() => tracing.instrumentation.disable());

describe('checkout forms', () => {
  it('acquire().promise then release(): one span, child of the caller, at the calling line', async () => {
    const pool = newPool();
    async function fetchReport() {
      const resource = await pool.acquire().promise; // line:acquire
      expect(pool.release(resource)).toBe(true);
      return resource.id;
    }
    expect(await tracing.inRequest('GET /report', fetchReport)).toBe(1);
    const span = onlyCheckout();
    expectCheckedIn(span);
    const request = tracing.spansNamed('GET /report')[0]!;
    expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(span.attributes['pool.library']).toBe('tarn');
    expect(span.attributes['db.client.connection.pool.name']).toBe('tarn');
    expect(span.attributes['code.function.name']).toBe('fetchReport');
    expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
    expect(span.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'acquire'));
    expect(String(span.attributes['code.stacktrace'])).not.toMatch(/instrumentation-pool-leak[/\\]src/);
  });

  it('acquire() returns tarn\'s PendingOperation (abort() and all), and abort() fails the span', async () => {
    const pool = newPool({ max: 1 });
    const holder = await pool.acquire().promise;
    const operation = pool.acquire();
    expect(operation.constructor.name).toBe('PendingOperation');
    expect(typeof operation.abort).toBe('function');
    operation.abort();
    expect(await outcomeOf(operation.promise)).toEqual({ error: 'Error(Error): aborted' });
    pool.release(holder);
    const [failed, ...others] = failedCheckouts();
    expect(others).toHaveLength(0);
    expect(failed!.status.message).toBe('aborted');
    expect(eventNamed(failed!, 'pool.exhausted')).toBeUndefined();
  });

  it('a granted acquire whose promise the application never reads is still a lease', async () => {
    const pool = newPool({ max: 1 });
    pool.acquire();
    await delay(20);
    expect(openLeaseCount()).toBe(1);
    expect(pool.numUsed()).toBe(1);
    const resource = (pool as unknown as { used: { resource: Resource }[] }).used[0]!.resource;
    expect(pool.release(resource)).toBe(true);
    expectCheckedIn(onlyCheckout());
  });
});

describe('context through the wait queue', () => {
  it('waiters served after a release from another context continue in their own context', async () => {
    const pool = newPool({ max: 1 });
    const holder = await pool.acquire().promise;
    const seen: Record<string, string | undefined> = {};
    const waiter = (name: string) =>
      tracing.inRequest(name, async () => {
        const resource = await pool.acquire().promise;
        seen[name] = trace.getActiveSpan()?.spanContext().spanId;
        await delay(5);
        pool.release(resource);
      });
    const waiters = [waiter('waiter-1'), waiter('waiter-2')];
    await tracing.tracer.startActiveSpan('releaser', async (span) => {
      await delay(30);
      pool.release(holder);
      span.end();
    });
    await Promise.all(waiters);
    for (const [name, pendingAhead] of [['waiter-1', 0], ['waiter-2', 1]] as const) {
      const request = tracing.spansNamed(name)[0]!;
      expect(seen[name]).toBe(request.spanContext().spanId);
      const [span, ...others] = childOf(checkouts(), request);
      expect(others).toHaveLength(0);
      expectCheckedIn(span!);
      expect(span!.attributes['pool.pending_at_request']).toBe(pendingAhead);
      expect(span!.attributes['pool.wait_ms']).toBeGreaterThanOrEqual(20);
      expect(eventNames(span!)).not.toContain('pool.checkin.loop_tick');
    }
  });
});

describe('failures', () => {
  it('acquireTimeoutMillis: tarn\'s TimeoutError unchanged, span ERROR with the exception, exhausted, counted', async () => {
    const pool = newPool({ max: 1, acquireTimeoutMillis: 200 });
    const holder = await pool.acquire().promise;
    const timeoutsBefore = await timeoutCount();
    tracing.exporter.reset();
    const error = await pool.acquire().promise.then(
      () => undefined,
      (failure: unknown) => failure as Error,
    );
    expect(error).toBeInstanceOf(tarn.TimeoutError);
    expect(describeError(error)).toBe(TIMEOUT);
    const span = onlyCheckout();
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'operation timed out for an unknown reason' });
    expect(eventNamed(span, 'exception')).toBeDefined();
    // The class name: tarn's TimeoutError instances are named plain `Error`.
    expect(span.attributes['error.type']).toBe('TimeoutError');
    expect(span.attributes['pool.pending_at_request']).toBe(0);
    expect(eventNamed(span, 'pool.exhausted')?.attributes?.['pool.holders.count']).toBe(1);
    expect(await timeoutCount()).toBe(timeoutsBefore + 1);
    pool.release(holder);
  });

  it('pool destroy() with an acquire pending: tarn aborts it, the span fails, nothing stays open', async () => {
    const pool = newPool({ max: 1 });
    const holder = await pool.acquire().promise;
    const pending = outcomeOf(pool.acquire().promise);
    const destroyed = pool.destroy();
    await delay(10);
    pool.release(holder);
    await destroyed;
    expect(await pending).toEqual({ error: 'Error(Error): aborted' });
    expect(checkouts()).toHaveLength(2);
    expect(failedCheckouts().map((span) => span.status.message)).toEqual(['aborted']);
    expect(openLeaseCount()).toBe(0);
  });

  it('a create error with propagateCreateError: the acquire and its span fail with that error', async () => {
    const pool = new tarn.Pool<Resource>({
      create: async () => Promise.reject(new Error('connect ECONNREFUSED')),
      destroy: () => undefined,
      min: 0,
      max: 1,
      propagateCreateError: true,
    });
    pools.push(pool);
    expect(await outcomeOf(pool.acquire().promise)).toEqual({ error: 'Error(Error): connect ECONNREFUSED' });
    const span = onlyCheckout();
    expect(span.status.message).toBe('connect ECONNREFUSED');
    expect(eventNamed(span, 'pool.exhausted')).toBeUndefined();
  });
});

describe('release', () => {
  it('double release: false as without the instrumentation; pool.release.invalid double_release', async () => {
    const doubleRelease = async () => {
      const pool = newPool();
      return tracing.inRequest('GET /double', async () => {
        const resource = await pool.acquire().promise;
        return [pool.release(resource), pool.release(resource)];
      });
    };
    const { without, withIt } = await withAndWithout(doubleRelease);
    expect(withIt).toEqual(without);
    expect(withIt).toEqual([true, false]);
    const request = tracing.spansNamed('GET /double').at(-1)!;
    const event = eventNamed(request, 'pool.release.invalid');
    expect(event?.attributes?.['pool.release.reason']).toBe('double_release');
    expect(String(event?.attributes?.['pool.release.stacktrace'])).toContain(THIS_FILE);
    expectCheckedIn(onlyCheckout());
  });

  it('release to the wrong pool: false, recorded as foreign, the lease stays held', async () => {
    const owner = newPool();
    const other = newPool();
    const resource = await owner.acquire().promise;
    expect(other.release(resource)).toBe(false);
    expect(openLeaseCount()).toBe(1);
    expect(owner.release(resource)).toBe(true);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(eventNamed(span, 'pool.release.invalid')?.attributes?.['pool.release.reason']).toBe('foreign');
  });

  it('release of an object the pool never lent: false, nothing recorded', () => {
    const pool = newPool();
    expect(pool.release({ id: 99 })).toBe(false);
    expect(tracing.exporter.getFinishedSpans()).toHaveLength(0);
  });

  it('resources that are not objects (numbers) are checked in by value', async () => {
    let next = 100;
    const pool = new tarn.Pool<number>({ create: async () => next++, destroy: () => undefined, min: 0, max: 1 });
    const resource = await pool.acquire().promise;
    expect(resource).toBe(100);
    expect(pool.release(resource)).toBe(true);
    expectCheckedIn(onlyCheckout());
    expect(pool.release(resource)).toBe(false);
    await pool.destroy();
  });
});

describe('pool.exhausted (#6)', () => {
  it('an acquire timeout names the holders, longest-held first', async () => {
    const pool = newPool({ max: 2, acquireTimeoutMillis: 150 });
    async function holdA() {
      return pool.acquire().promise; // line:holdA
    }
    async function holdB() {
      return pool.acquire().promise; // line:holdB
    }
    const a = await holdA();
    await delay(40);
    const b = await holdB();
    expect(await outcomeOf(pool.acquire().promise)).toEqual({ error: TIMEOUT });
    const [failed] = failedCheckouts();
    const attributes = eventNamed(failed!, 'pool.exhausted')?.attributes ?? {};
    const holders = attributes['pool.holders'] as string[];
    expect(holders).toHaveLength(2);
    expect(holders[0]).toMatch(new RegExp(`^holdA \\(.*${THIS_FILE}:${lineOf(import.meta.url, 'holdA')}\\)( ← .*)? held \\d+ ms — (busy|idle) \\d+ ms( in transaction)?(, last .+)?$`));
    expect(holders[1]).toMatch(new RegExp(`^holdB \\(.*${THIS_FILE}:${lineOf(import.meta.url, 'holdB')}\\)( ← .*)? held \\d+ ms — (busy|idle) \\d+ ms( in transaction)?(, last .+)?$`));
    const heldMs = holders.map((holder) => Number(/held (\d+) ms/.exec(holder)![1]));
    expect(heldMs[0]).toBeGreaterThanOrEqual(heldMs[1]! + 30);
    expect(attributes['pool.holders.count']).toBe(2);
    expect(attributes['db.client.connection.max']).toBe(2);
    expect(attributes['pool.pending']).toBe(0);
    pool.release(a);
    pool.release(b);
  });
});

describe('unhandled rejections: the same as without the instrumentation', () => {
  /** Unhandled rejection messages while a pool of one, already lent, gets `waiter` (timeout 30 ms). */
  function unhandledWith(waiter: (pool: Pool) => void) {
    return () =>
      unhandledRejectionsDuring(async () => {
        const pool = newPool({ max: 1, acquireTimeoutMillis: 30 });
        const holder = await pool.acquire().promise;
        waiter(pool);
        await delay(80);
        pool.release(holder);
      }).then((reasons) => reasons.map(describeError));
  }

  it('a timed-out acquire whose promise is never read: one, with the same error', async () => {
    const { without, withIt } = await withAndWithout(unhandledWith((pool) => void pool.acquire()));
    expect(without).toEqual([TIMEOUT]);
    expect(withIt).toEqual(without);
  });

  it('a timed-out acquire read with .promise.then(onGranted) only: one, with the same error', async () => {
    const { without, withIt } = await withAndWithout(unhandledWith((pool) => void pool.acquire().promise.then(() => undefined)));
    expect(without).toEqual([TIMEOUT]);
    expect(withIt).toEqual(without);
  });

  it('a timed-out acquire the application handles: none', async () => {
    const { without, withIt } = await withAndWithout(
      unhandledWith((pool) => void pool.acquire().promise.catch(() => undefined)),
    );
    expect(without).toEqual([]);
    expect(withIt).toEqual([]);
  });

  it('an unread acquire aborted by pool destroy(): none (tarn reads it itself)', async () => {
    const abortedByDestroy = () =>
      unhandledRejectionsDuring(async () => {
        const pool = newPool({ max: 1 });
        const holder = await pool.acquire().promise;
        pool.acquire();
        const destroyed = pool.destroy();
        pool.release(holder);
        await destroyed;
      });
    const { without, withIt } = await withAndWithout(abortedByDestroy);
    expect(without).toEqual([]);
    expect(withIt).toEqual([]);
    expect(failedCheckouts().map((span) => span.status.message)).toEqual(['aborted']);
  });
});

describe('no side effects', () => {
  it('no listener is added per checkout', async () => {
    const pool = newPool();
    const processEvents = ['exit', 'beforeExit', 'unhandledRejection', 'uncaughtException', 'warning'] as const;
    const before = processEvents.map((name) => process.listenerCount(name));
    for (let i = 0; i < 20; i++) pool.release(await pool.acquire().promise);
    expect((pool as unknown as { emitter: NodeJS.EventEmitter }).emitter.eventNames()).toEqual([]);
    expect(processEvents.map((name) => process.listenerCount(name))).toEqual(before);
    expect(checkouts()).toHaveLength(20);
  });

  it('disable() restores acquire and release; enable() patches them again', async () => {
    const prototype = tarn.Pool.prototype;
    const patched = () => [isWrapped(prototype.acquire), isWrapped(prototype.release)];
    expect(patched()).toEqual([true, true]);
    tracing.instrumentation.disable();
    try {
      expect(patched()).toEqual([false, false]);
      const pool = newPool();
      pool.release(await pool.acquire().promise);
      expect(checkouts()).toHaveLength(0);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(patched()).toEqual([true, true]);
    const pool = newPool();
    pool.release(await pool.acquire().promise);
    expect(checkouts()).toHaveLength(1);
  });
});
