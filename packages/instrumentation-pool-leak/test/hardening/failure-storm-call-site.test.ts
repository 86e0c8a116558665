// A timeout storm with V8's own stack formatting (no application Error.prepareStackTrace), so
// queued checkouts capture their frames unread: the spans that the failure queue finishes on
// later turns, after their leases ended, must still carry each checkout's call site. (The test
// runner installs its own prepareStackTrace; the storm runs without it, as an application does.)
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import type * as GenericPoolModule from 'generic-pool';
import { afterAll, describe, expect, it } from 'vitest';
import type { LeaseCore } from '../../src/core/lease-core';
import { requireLibrary, resourceFactory, type Resource } from '../support/in-memory-resources';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const WAITERS = 500;
const TIMEOUT_MS = 100;
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));
const core = (): LeaseCore => (tracing.instrumentation as unknown as { core: LeaseCore }).core;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

afterAll(() => tracing.instrumentation.disable());

/** The application's checkout: the call site every failed span must name. */
function takeConnectionForReport(pool: GenericPoolModule.Pool<Resource>): Promise<Resource> {
  return pool.acquire();
}

describe('a timeout storm, stacks captured unread', () => {
  it('names the call site on every failed span, also those finished on later turns', async () => {
    const runnersPrepare = Error.prepareStackTrace;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    const pool = genericPool.createPool(resourceFactory(), { max: 1, acquireTimeoutMillis: TIMEOUT_MS });
    const held = await pool.acquire();
    tracing.exporter.reset();
    const settled: Promise<unknown>[] = [];
    for (let index = 0; index < WAITERS; index++) {
      const parent = tracing.tracer.startSpan(`waiter ${index}`);
      const acquired = context.with(trace.setSpan(context.active(), parent), () => takeConnectionForReport(pool));
      settled.push(acquired.then(() => 'granted', () => 'failed'));
    }
    // Every timeout is due at the same tick: the failures overflow the first turn.
    const dueAt = performance.now() + TIMEOUT_MS + 50;
    while (performance.now() < dueAt) Atomics.wait(SLEEPER, 0, 0, 10);
    expect(new Set(await Promise.all(settled))).toEqual(new Set(['failed']));
    const queuedAfterTheTick = core().queuedFailureCount;
    for (let turns = 0; core().queuedFailureCount > 0 && turns < 1000; turns++) await nextTurn();
    Error.prepareStackTrace = runnersPrepare;
    await pool.release(held);
    await pool.drain();
    await pool.clear();

    expect(queuedAfterTheTick).toBeGreaterThan(0);
    const failed = tracing.spansNamed('generic-pool checkout').filter((span) => span.status.code === SpanStatusCode.ERROR);
    expect(failed).toHaveLength(WAITERS);
    const withoutCallSite = failed.filter((span) => span.attributes['code.function.name'] !== 'takeConnectionForReport');
    expect(withoutCallSite.length, `${withoutCallSite.length} of ${WAITERS} failed spans without the call site`).toBe(0);
    for (const span of failed) expect(span.attributes['code.file.path']).toMatch(/failure-storm-call-site\.test\.ts$/);
  });
});
