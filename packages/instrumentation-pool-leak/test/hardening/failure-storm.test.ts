// A timeout storm: thousands of queued checkouts failing in one timer tick of a real
// generic-pool. The application sees each error (and its `poolHolders`) at once; the failed
// checkout spans are finished over several turns of the loop, in order, each with the time and
// the holders of its own failure; the pool's timeout error's stack is never formatted for us.
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type * as GenericPoolModule from 'generic-pool';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { LeaseCore } from '../../src/core/lease-core';
import { requireLibrary, resourceFactory, type Resource } from '../support/in-memory-resources';
import { eventNamed } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const CHECKOUT = 'generic-pool checkout';
const TIMEOUT_MESSAGE = 'ResourceRequest timed out';
const WAITERS = 5000;
const HOLDERS = 2;
const TIMEOUT_MS = 200;
/** Nanosecond rounding of the SDK's hrtime arithmetic. */
const HR_TIME_ROUNDING_MS = 0.01;
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

type Pool = GenericPoolModule.Pool<Resource>;

interface Failure {
  readonly error: Error & { poolHolders?: readonly string[] };
  readonly parentSpanId: string;
  /** `performance.now()` just before the checkout was requested. */
  readonly requestedAt: number;
  /** `performance.now()` when the application's rejection handler ran. */
  readonly seenAt: number;
}

/** Stack formattings of the pool's timeout errors, counted where V8 formats them. */
let timeoutStacksFormatted = 0;
const originalPrepareStackTrace = Error.prepareStackTrace;
Error.prepareStackTrace = (error: Error, frames: NodeJS.CallSite[]) => {
  if (error.message === TIMEOUT_MESSAGE) timeoutStacksFormatted++;
  return [String(error), ...frames.map((frame) => `    at ${String(frame)}`)].join('\n');
};

const core = (): LeaseCore => (tracing.instrumentation as unknown as { core: LeaseCore }).core;
const checkouts = (): ReadableSpan[] => tracing.spansNamed(CHECKOUT);
const failedCheckouts = (): ReadableSpan[] => checkouts().filter((span) => span.status.code === SpanStatusCode.ERROR);
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const hrTimeToMilliseconds = ([seconds, nanos]: readonly [number, number]): number => seconds * 1000 + nanos / 1e6;

const pools: Pool[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) {
    await pool.drain();
    await pool.clear();
  }
});
afterAll(() => {
  Error.prepareStackTrace = originalPrepareStackTrace;
  tracing.instrumentation.disable();
});

/**
 * Holds both connections of a pool and queues `waiters` checkouts in one synchronous burst, so
 * their timeouts fire in one timer tick. Resolves with every failure as the application saw it,
 * plus how many failed spans were exported when the application saw the last error.
 */
async function timeoutStorm(waiters: number) {
  const pool = genericPool.createPool(resourceFactory(), { max: HOLDERS, acquireTimeoutMillis: TIMEOUT_MS });
  pools.push(pool);
  const held = [await pool.acquire(), await pool.acquire()];
  tracing.exporter.reset();
  const failures: Failure[] = [];
  let atLastFailure: number | undefined;
  const settled: Promise<void>[] = [];
  for (let index = 0; index < waiters; index++) {
    // Each checkout runs under its own parent span, which tells its checkout span apart.
    const parent = tracing.tracer.startSpan(`waiter ${index}`);
    const requestedAt = performance.now();
    const acquired = context.with(trace.setSpan(context.active(), parent), () => pool.acquire());
    settled.push(
      acquired.then(
        () => undefined,
        (error: Error) => {
          failures.push({ error, parentSpanId: parent.spanContext().spanId, requestedAt, seenAt: performance.now() });
          if (failures.length === waiters) atLastFailure = failedCheckouts().length;
        },
      ),
    );
  }
  // The loop stays busy past the timeout (as under load), so every timer is due at the next tick.
  const dueAt = performance.now() + TIMEOUT_MS + 50;
  while (performance.now() < dueAt) Atomics.wait(SLEEPER, 0, 0, 10);
  await Promise.all(settled);
  for (const resource of held) await pool.release(resource);
  return { failures, exportedAtLastFailure: () => atLastFailure };
}

describe('a timeout storm', () => {
  it('finishes every failed span over several turns, in order, with its own end time, holders and exception', async () => {
    const { failures, exportedAtLastFailure } = await timeoutStorm(WAITERS);
    expect(failures).toHaveLength(WAITERS);
    // The application has every error, holders attached, before the spans are all done.
    for (const { error } of failures) {
      expect(error.message).toBe(TIMEOUT_MESSAGE);
      expect(error.poolHolders).toHaveLength(HOLDERS);
    }
    let turns = 0;
    while (failedCheckouts().length < WAITERS && turns < 1000) {
      await nextTurn();
      turns++;
    }
    // All failed in one tick: the first few spans ended at once, the rest over later turns.
    expect(exportedAtLastFailure()).toBeGreaterThan(0);
    expect(exportedAtLastFailure()).toBeLessThan(WAITERS / 10);
    expect(turns).toBeGreaterThan(1);
    expect(core().queuedFailureCount).toBe(0);

    const spans = failedCheckouts();
    expect(spans).toHaveLength(WAITERS);
    // Finished in the order the application saw them fail.
    expect(spans.map((span) => span.parentSpanContext?.spanId)).toEqual(failures.map((failure) => failure.parentSpanId));
    for (const [index, span] of spans.entries()) {
      const { requestedAt, seenAt } = failures[index]!;
      // Ended at its failure, after the timeout and before the application saw the error; the
      // span's own clock (one anchor per span) makes its duration exact.
      const durationMs = hrTimeToMilliseconds(span.duration);
      expect(durationMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 1);
      expect(durationMs).toBeLessThanOrEqual(seenAt - requestedAt + HR_TIME_ROUNDING_MS);
      const exhausted = eventNamed(span, 'pool.exhausted');
      const exception = eventNamed(span, 'exception');
      expect(exhausted?.time).toEqual(span.endTime);
      expect(exception?.time).toEqual(span.endTime);
      expect(exhausted?.attributes?.['pool.holders']).toHaveLength(HOLDERS);
      expect(exhausted?.attributes?.['pool.holders.count']).toBe(HOLDERS);
      expect(exception?.attributes).toEqual({ 'exception.type': 'TimeoutError', 'exception.message': TIMEOUT_MESSAGE });
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: TIMEOUT_MESSAGE });
      expect(span.attributes['error.type']).toBe('TimeoutError');
    }
  });

  it('never formats the stack of the pool timeout error; the application still can', async () => {
    timeoutStacksFormatted = 0;
    const { failures } = await timeoutStorm(3);
    while (core().queuedFailureCount > 0) await nextTurn();
    expect(failedCheckouts()).toHaveLength(3);
    expect(timeoutStacksFormatted).toBe(0);
    const stack = failures[0]!.error.stack;
    expect(stack).toContain(TIMEOUT_MESSAGE);
    expect(timeoutStacksFormatted).toBe(1);
  });

  it('a failure other than the pool running out keeps the full exception with its stack', async () => {
    const pool = genericPool.createPool(resourceFactory(), { max: 1 });
    await pool.drain();
    tracing.exporter.reset();
    const error = await pool.acquire().then(
      () => undefined,
      (failure: Error) => failure,
    );
    expect(error).toBeInstanceOf(Error);
    const exception = eventNamed(tracing.onlySpanNamed(CHECKOUT), 'exception');
    expect(exception?.attributes?.['exception.message']).toBe(error!.message);
    expect(String(exception?.attributes?.['exception.stacktrace'])).toContain(error!.message);
    await pool.clear();
  });
});
