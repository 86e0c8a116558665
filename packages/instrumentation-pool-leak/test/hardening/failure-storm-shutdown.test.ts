// Failed checkout spans still queued when the tracer provider force-flushes or shuts down are
// finished first, so the flush or the shutdown exports them: a storm right before either loses
// nothing (a serverless handler flushes at its end and may be frozen right after).
import type * as GenericPoolModule from 'generic-pool';
import { beforeEach, describe, expect, it } from 'vitest';
import type { LeaseCore } from '../../src/core/lease-core';
import { requireLibrary, resourceFactory } from '../support/in-memory-resources';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const CHECKOUT = 'generic-pool checkout';
const WAITERS = 2000;
const TIMEOUT_MS = 100;
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));
/** `ExportResultCode.SUCCESS` of @opentelemetry/core. */
const EXPORT_SUCCESS = 0;

/** Failed checkout spans the exporter accepted (it empties its list when shut down, and refuses spans after that). */
let acceptedFailedCheckouts = 0;
const exportSpans = tracing.exporter.export.bind(tracing.exporter);
tracing.exporter.export = (spans, done) => {
  // The held checkout ends at shutdown with ERROR too, but without an exception: not counted.
  const failed = spans.filter((span) => span.name === CHECKOUT && span.events.some((event) => event.name === 'exception')).length;
  exportSpans(spans, (result) => {
    if (result.code === EXPORT_SUCCESS) acceptedFailedCheckouts += failed;
    done(result);
  });
};

beforeEach(() => {
  acceptedFailedCheckouts = 0;
});

const core = (): LeaseCore => (tracing.instrumentation as unknown as { core: LeaseCore }).core;

/** Starts WAITERS checkouts that all time out together; `atLastFailure` runs in the last one's handler. */
async function timeoutStorm(atLastFailure: () => void): Promise<() => Promise<void>> {
  const pool = genericPool.createPool(resourceFactory(), { max: 1, acquireTimeoutMillis: TIMEOUT_MS });
  const held = await pool.acquire();
  let failed = 0;
  const settled: Promise<void>[] = [];
  for (let index = 0; index < WAITERS; index++) {
    settled.push(
      pool.acquire().then(
        () => undefined,
        () => {
          if (++failed === WAITERS) atLastFailure();
        },
      ),
    );
  }
  // Blocks the loop past the timeout, so every waiter's timer fires in one turn.
  const dueAt = performance.now() + TIMEOUT_MS + 50;
  while (performance.now() < dueAt) Atomics.wait(SLEEPER, 0, 0, 10);
  await Promise.all(settled);
  return async () => {
    await pool.release(held);
    await pool.drain();
    await pool.clear();
  };
}

describe('a timeout storm at a force flush', () => {
  it('exports every failed checkout span, the queued ones included, by the time the flush resolves', async () => {
    let queuedAtFlush = 0;
    let flushed: Promise<void> | undefined;
    const cleanUp = await timeoutStorm(() => {
      queuedAtFlush = core().queuedFailureCount;
      flushed = tracing.provider.forceFlush();
    });
    await flushed;
    const exportedAtFlush = acceptedFailedCheckouts;
    expect(queuedAtFlush).toBeGreaterThan(0);
    expect(exportedAtFlush).toBe(WAITERS);
    await cleanUp();
  });
});

describe('a timeout storm at provider shutdown', () => {
  it('exports every failed checkout span, the queued ones included', async () => {
    let queuedAtShutdown = 0;
    let shutdown: Promise<void> | undefined;
    const cleanUp = await timeoutStorm(() => {
      queuedAtShutdown = core().queuedFailureCount;
      shutdown = tracing.provider.shutdown();
    });
    await shutdown;
    // The in-memory exporter answers each export on a timer.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(queuedAtShutdown).toBeGreaterThan(0);
    expect(acceptedFailedCheckouts).toBe(WAITERS);
    expect(core().queuedFailureCount).toBe(0);
    await cleanUp();
    tracing.instrumentation.disable();
  });
});
