// generic-pool adapter against the real library (in-memory resources) and the real SDK.
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { isPatchedByPoolLeak } from '../../src/adapters/kit/patcher';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type * as GenericPoolModule from 'generic-pool';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  delay,
  outcomeOf,
  requireLibrary,
  unhandledRejectionsDuring,
  genericPoolsOf,
} from '../support/in-memory-resources';
import { lineOf } from '../support/source-lines';
import { childOf, eventNamed, eventNames, expectCheckedIn } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const CHECKOUT = 'generic-pool checkout';
const THIS_FILE = 'generic-pool.test.ts';
const NOT_IN_POOL = 'Error(Error): Resource not currently part of this pool';

const { pools, newPool } = genericPoolsOf(genericPool);

const checkouts = (): ReadableSpan[] => tracing.spansNamed(CHECKOUT);
const onlyCheckout = (): ReadableSpan => tracing.onlySpanNamed(CHECKOUT);

const openLeaseCount = tracing.openLeaseCount;

async function timeoutCount(): Promise<number> {
  const points = await tracing.metricPoints('db.client.connection.timeouts');
  const point = points.find((candidate) => candidate.attributes['db.client.connection.pool.name'] === 'generic-pool');
  return (point?.value as number | undefined) ?? 0;
}

/** `code.*` name the function that called the pool, this file, and the marked line. */
function expectCallSite(span: ReadableSpan, functionName: string, line: string): void {
  expect(span.attributes['code.function.name']).toBe(functionName);
  expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
  expect(span.attributes['code.line.number']).toBe(lineOf(import.meta.url, line));
  expect(span.attributes['code.column.number']).toBeGreaterThan(0);
  expect(String(span.attributes['code.stacktrace'])).toContain(THIS_FILE);
  expect(String(span.attributes['code.stacktrace'])).not.toMatch(/instrumentation-pool-leak[/\\]src/);
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
  await Promise.all(pools.splice(0).map(async (pool) => {
    await pool.drain();
    await pool.clear();
  }));
  expect(openLeaseCount()).toBe(0);
});
afterAll(() => tracing.instrumentation.disable());

describe('checkout forms', () => {
  it('acquire() then release(): one span from request to checkin, child of the caller, at the calling line', async () => {
    const pool = newPool();
    async function fetchReport() {
      const resource = await pool.acquire(); // line:acquire
      await pool.release(resource);
      return resource.id;
    }
    expect(await tracing.inRequest('GET /report', fetchReport)).toBe(1);
    const span = onlyCheckout();
    expectCheckedIn(span);
    const request = tracing.spansNamed('GET /report')[0]!;
    expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(span.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(span.attributes['pool.library']).toBe('generic-pool');
    expect(span.attributes['db.client.connection.pool.name']).toBe('generic-pool');
    expect(span.attributes['db.system.name']).toBeUndefined();
    expect(span.attributes['pool.checkin.destroyed']).toBeUndefined();
    expectCallSite(span, 'fetchReport', 'acquire');
  });

  it('acquire(priority): the priority reaches the pool, the higher-priority waiter is served first', async () => {
    const pool = newPool({ max: 1, priorityRange: 3 });
    const holder = await pool.acquire();
    const order: string[] = [];
    const serve = (name: string, priority: number) =>
      pool.acquire(priority).then(async (resource) => {
        order.push(name);
        await pool.release(resource);
      });
    const waiters = Promise.all([serve('low', 2), serve('high', 0)]);
    await pool.release(holder);
    await waiters;
    expect(order).toEqual(['high', 'low']);
    expect(checkouts()).toHaveLength(3);
    checkouts().forEach(expectCheckedIn);
  });

  it('pool.use(fn): one span, at the line that called use; a rejecting fn destroys the resource', async () => {
    const pool = newPool();
    async function renderInvoice() {
      return pool.use(async (resource) => resource.id * 10); // line:use
    }
    expect(await tracing.inRequest('GET /invoice', renderInvoice)).toBe(10);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expectCallSite(span, 'renderInvoice', 'use');
    const request = tracing.spansNamed('GET /invoice')[0]!;
    expect(childOf(checkouts(), request)).toHaveLength(1);

    tracing.exporter.reset();
    await expect(pool.use(async () => Promise.reject(new Error('render failed')))).rejects.toThrow('render failed');
    const failed = onlyCheckout();
    expectCheckedIn(failed);
    expect(failed.attributes['pool.checkin.destroyed']).toBe(true);
  });

  it('destroy(resource): the span ends, marked destroyed, and the pool destroys the resource', async () => {
    const pool = newPool();
    const resource = await pool.acquire();
    await pool.destroy(resource);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
    expect(pool.size).toBe(0);
  });
});

describe('context through the wait queue', () => {
  it('waiters served after a release from another context continue in their own context', async () => {
    const pool = newPool({ max: 1 });
    const holder = await pool.acquire();
    const seen: Record<string, string | undefined> = {};
    const waiter = (name: string) =>
      tracing.inRequest(name, async () => {
        const resource = await pool.acquire();
        seen[name] = trace.getActiveSpan()?.spanContext().spanId;
        await delay(5);
        await pool.release(resource);
      });
    const waiters = [waiter('waiter-1'), waiter('waiter-2')];
    await tracing.tracer.startActiveSpan('releaser', async (span) => {
      await delay(30);
      await pool.release(holder);
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
  it('acquireTimeoutMillis: TimeoutError unchanged, span ERROR with the exception, exhausted, counted', async () => {
    const pool = newPool({ max: 1, acquireTimeoutMillis: 200 });
    const holder = await pool.acquire();
    const timeoutsBefore = await timeoutCount();
    tracing.exporter.reset();
    const error = await pool.acquire().then(
      () => undefined,
      (failure: unknown) => failure as Error,
    );
    expect(error?.name).toBe('TimeoutError');
    expect(error?.message).toBe('ResourceRequest timed out');
    const span = onlyCheckout();
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'ResourceRequest timed out' });
    expect(eventNamed(span, 'exception')?.attributes?.['exception.message']).toBe('ResourceRequest timed out');
    expect(span.attributes['error.type']).toBe('TimeoutError');
    expect(span.attributes['pool.pending_at_request']).toBe(0);
    expect(span.attributes['pool.held_ms']).toBeUndefined();
    expect(eventNamed(span, 'pool.exhausted')?.attributes?.['pool.holders.count']).toBe(1);
    expect(await timeoutCount()).toBe(timeoutsBefore + 1);
    await pool.release(holder);
  });

  it('maxWaitingClients: the rejection is unchanged, span ERROR and exhausted, not counted as a timeout', async () => {
    const pool = newPool({ max: 1, maxWaitingClients: 0 });
    const holder = await pool.acquire();
    const timeoutsBefore = await timeoutCount();
    tracing.exporter.reset();
    expect(await outcomeOf(pool.acquire())).toEqual({ error: 'Error(Error): max waitingClients count exceeded' });
    const span = onlyCheckout();
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(eventNamed(span, 'exception')).toBeDefined();
    expect(eventNamed(span, 'pool.exhausted')).toBeDefined();
    expect(await timeoutCount()).toBe(timeoutsBefore);
    await pool.release(holder);
  });

  it('acquire after drain(): "pool is draining" unchanged, span ERROR, not exhausted', async () => {
    const pool = newPool();
    await pool.drain();
    expect(await outcomeOf(pool.acquire())).toEqual({ error: 'Error(Error): pool is draining and cannot accept work' });
    const span = onlyCheckout();
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'pool is draining and cannot accept work' });
    expect(eventNamed(span, 'pool.exhausted')).toBeUndefined();
  });

  it('drain() with a lease held and a waiter queued: both are served, every span ends, clear() destroys', async () => {
    const pool = newPool({ max: 1 });
    const holder = await pool.acquire();
    const waiter = pool.acquire().then((resource) => pool.release(resource));
    const drained = pool.drain();
    await delay(10);
    expect(openLeaseCount()).toBe(2);
    await pool.release(holder);
    await Promise.all([waiter, drained]);
    await pool.clear();
    expect(checkouts()).toHaveLength(2);
    checkouts().forEach(expectCheckedIn);
    expect(openLeaseCount()).toBe(0);
    expect(pool.size).toBe(0);
  });
});

describe('invalid release', () => {
  it('double release: the same rejection as without the instrumentation; pool.release.invalid double_release', async () => {
    const doubleRelease = async () => {
      const pool = newPool();
      return tracing.inRequest('GET /double', async () => {
        const resource = await pool.acquire();
        await pool.release(resource);
        return outcomeOf(pool.release(resource));
      });
    };
    const { without, withIt } = await withAndWithout(doubleRelease);
    expect(withIt).toEqual(without);
    expect(withIt).toEqual({ error: NOT_IN_POOL });
    const request = tracing.spansNamed('GET /double').at(-1)!;
    const event = eventNamed(request, 'pool.release.invalid');
    expect(event?.attributes?.['pool.release.reason']).toBe('double_release');
    expect(String(event?.attributes?.['pool.release.stacktrace'])).toContain(THIS_FILE);
    expectCheckedIn(onlyCheckout());
  });

  it('release after destroy: the same rejection; pool.release.invalid destroyed', async () => {
    const releaseAfterDestroy = async () => {
      const pool = newPool();
      return tracing.inRequest('GET /destroyed', async () => {
        const resource = await pool.acquire();
        await pool.destroy(resource);
        return outcomeOf(pool.release(resource));
      });
    };
    const { without, withIt } = await withAndWithout(releaseAfterDestroy);
    expect(withIt).toEqual(without);
    expect(withIt).toEqual({ error: NOT_IN_POOL });
    const request = tracing.spansNamed('GET /destroyed').at(-1)!;
    expect(eventNamed(request, 'pool.release.invalid')?.attributes?.['pool.release.reason']).toBe('destroyed');
  });

  it('release to the wrong pool: rejected by that pool, recorded as foreign, the lease stays held', async () => {
    const owner = newPool();
    const other = newPool();
    const resource = await owner.acquire();
    expect(await outcomeOf(other.release(resource))).toEqual({ error: NOT_IN_POOL });
    expect(openLeaseCount()).toBe(1);
    await owner.release(resource);
    const span = onlyCheckout();
    expectCheckedIn(span);
    expect(eventNamed(span, 'pool.release.invalid')?.attributes?.['pool.release.reason']).toBe('foreign');
  });

  it('release of an object the pool never lent: the rejection only, nothing recorded', async () => {
    const pool = newPool();
    expect(await outcomeOf(pool.release({ id: 99 }))).toEqual({ error: NOT_IN_POOL });
    expect(tracing.exporter.getFinishedSpans()).toHaveLength(0);
  });

  it('resources that are not objects (numbers) are checked in by value', async () => {
    let next = 100;
    const pool = genericPool.createPool({ create: async () => next++, destroy: async () => undefined }, { max: 1 });
    const resource = await pool.acquire();
    expect(resource).toBe(100);
    await pool.release(resource);
    expectCheckedIn(onlyCheckout());
    expect(await outcomeOf(pool.release(resource))).toEqual({ error: NOT_IN_POOL });
    await pool.drain();
    await pool.clear();
  });
});

describe('pool.exhausted (#6)', () => {
  it('a rejection for a full wait queue names the holders, longest-held first', async () => {
    const pool = newPool({ max: 2, maxWaitingClients: 0 });
    async function holdA() {
      return pool.acquire(); // line:holdA
    }
    async function holdB() {
      return pool.acquire(); // line:holdB
    }
    const a = await holdA();
    await delay(40);
    const b = await holdB();
    await delay(10);
    expect(await outcomeOf(pool.acquire())).toEqual({ error: 'Error(Error): max waitingClients count exceeded' });
    const failed = checkouts().find((span) => span.status.code === SpanStatusCode.ERROR)!;
    const attributes = eventNamed(failed, 'pool.exhausted')?.attributes ?? {};
    const holders = attributes['pool.holders'] as string[];
    expect(holders).toHaveLength(2);
    expect(holders[0]).toMatch(new RegExp(`^holdA \\(.*${THIS_FILE}:${lineOf(import.meta.url, 'holdA')}\\)( ← .*)? held \\d+ ms — (busy|idle) \\d+ ms( in transaction)?(, last .+)?$`));
    expect(holders[1]).toMatch(new RegExp(`^holdB \\(.*${THIS_FILE}:${lineOf(import.meta.url, 'holdB')}\\)( ← .*)? held \\d+ ms — (busy|idle) \\d+ ms( in transaction)?(, last .+)?$`));
    const heldMs = holders.map((holder) => Number(/held (\d+) ms/.exec(holder)![1]));
    expect(heldMs[0]).toBeGreaterThanOrEqual(heldMs[1]! + 30);
    expect(attributes['pool.holders.count']).toBe(2);
    expect(attributes['db.client.connection.max']).toBe(2);
    expect(attributes['pool.pending']).toBe(0);
    await pool.release(a);
    await pool.release(b);
  });
});

describe('unhandled rejections: the same as without the instrumentation', () => {
  it('an ignored acquire that times out: none (generic-pool handles queued requests itself)', async () => {
    const ignoredTimeout = () =>
      unhandledRejectionsDuring(async () => {
        const pool = newPool({ max: 1, acquireTimeoutMillis: 30 });
        const holder = await pool.acquire();
        void pool.acquire();
        await delay(80);
        await pool.release(holder);
      });
    const { without, withIt } = await withAndWithout(ignoredTimeout);
    expect(without).toEqual([]);
    expect(withIt).toEqual([]);
    const failed = checkouts().filter((span) => span.status.code === SpanStatusCode.ERROR);
    expect(failed).toHaveLength(1);
  });

  it('ignored immediate rejections (wait queue full, draining): one each, with the same error', async () => {
    const ignoredRejections = () =>
      unhandledRejectionsDuring(async () => {
        const full = newPool({ max: 1, maxWaitingClients: 0 });
        const holder = await full.acquire();
        void full.acquire();
        const draining = newPool();
        await draining.drain();
        void draining.acquire();
        await delay(10);
        await full.release(holder);
      });
    const { without, withIt } = await withAndWithout(ignoredRejections);
    const messages = (reasons: unknown[]) => reasons.map((reason) => (reason as Error).message);
    expect(messages(without)).toEqual(['max waitingClients count exceeded', 'pool is draining and cannot accept work']);
    expect(messages(withIt)).toEqual(messages(without));
  });

  it('an awaited immediate rejection: handled, none', async () => {
    const unhandled = await unhandledRejectionsDuring(async () => {
      const pool = newPool();
      await pool.drain();
      await pool.acquire().then(undefined, () => undefined);
    });
    expect(unhandled).toEqual([]);
  });
});

describe('no side effects', () => {
  it('no listener is added per checkout', async () => {
    const pool = newPool();
    const processEvents = ['exit', 'beforeExit', 'unhandledRejection', 'uncaughtException', 'warning'] as const;
    const before = processEvents.map((name) => process.listenerCount(name));
    for (let i = 0; i < 20; i++) {
      const resource = await pool.acquire();
      await pool.release(resource);
    }
    expect(pool.eventNames()).toEqual([]);
    expect(processEvents.map((name) => process.listenerCount(name))).toEqual(before);
    expect(checkouts()).toHaveLength(20);
  });

  it('disable() restores acquire, release and destroy; enable() patches them again', async () => {
    const prototype = genericPool.Pool.prototype;
    const patched = () => [prototype.acquire, prototype.release, prototype.destroy].map((method) => isPatchedByPoolLeak(method));
    expect(patched()).toEqual([true, true, true]);
    tracing.instrumentation.disable();
    try {
      expect(patched()).toEqual([false, false, false]);
      const pool = newPool();
      await pool.release(await pool.acquire());
      expect(checkouts()).toHaveLength(0);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(patched()).toEqual([true, true, true]);
    const pool = newPool();
    await pool.release(await pool.acquire());
    expect(checkouts()).toHaveLength(1);
  });
});
