// A pool that is gone while checkouts still wait on it. pg-pool never settles its waiters after
// end(): they end when end() runs, with a clear status, and the held client's lease ends at its
// release as usual. A pool object the application drops with waiters and never ends: once it is
// collected, its leases end. Nothing of either stays in the instrumentation. Real pg-pool and
// PostgreSQL; a real generic-pool for the dropped pool.
import { SpanStatusCode } from '@opentelemetry/api';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type * as GenericPoolModule from 'generic-pool';
import { afterAll, describe, expect, it } from 'vitest';
import { requireLibrary, resourceFactory } from '../support/in-memory-resources';
import { loadPg, postgresConfig } from '../support/pg';
import { setupTracing } from '../support/tracing';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const tracing = setupTracing({ leakThresholdMs: 60_000 });
const pg = loadPg();
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const CHECKOUT = 'pg-pool checkout';
const GENERIC_CHECKOUT = 'generic-pool checkout';
const WAITERS = 50;

afterAll(() => tracing.instrumentation.disable());

/** Ends a pg pool with `WAITERS` checkouts queued on it, then releases its one client. */
async function endPoolWithWaiters(): Promise<void> {
  const pool = new pg.Pool({ ...postgresConfig(), max: 1 });
  const client = await pool.connect();
  for (let index = 0; index < WAITERS; index++) pool.connect().catch(() => undefined);
  const ended = pool.end();
  client.release();
  await ended;
}

/** A generic pool whose one resource is held, with `WAITERS` queued, dropped without ending it. */
async function dropPoolWithWaiters(): Promise<void> {
  const pool = genericPool.createPool(resourceFactory(), { max: 1 });
  await pool.acquire();
  for (let index = 0; index < WAITERS; index++) pool.acquire().catch(() => undefined);
}

async function collectUntil(done: () => boolean): Promise<void> {
  for (let round = 0; round < 50 && !done(); round++) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('a pg pool ended with checkouts waiting', () => {
  it('ends the waiting checkouts when end() runs, and the held one at its release', async () => {
    tracing.exporter.reset();
    const pool = new pg.Pool({ ...postgresConfig(), max: 1 });
    const client = await pool.connect();
    const waiters: Promise<unknown>[] = [];
    for (let index = 0; index < WAITERS; index++) waiters.push(pool.connect().catch(() => undefined));
    expect(tracing.openLeaseCount()).toBe(WAITERS + 1);
    const ended = pool.end();
    // Synchronously: the pool will never serve them, and its end() does not wait for them.
    const waiting = tracing.spansNamed(CHECKOUT);
    expect(waiting).toHaveLength(WAITERS);
    for (const span of waiting) expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'pool ended with the checkout still waiting' });
    expect(tracing.openLeaseCount()).toBe(1);
    client.release();
    await ended;
    const all = tracing.spansNamed(CHECKOUT);
    expect(all).toHaveLength(WAITERS + 1);
    const held = all.at(-1)!;
    expect(held.status.code).toBe(SpanStatusCode.UNSET);
    expect(held.attributes['pool.held_ms']).toBeTypeOf('number');
    // pg-pool closes a client released while it ends: the checkin says so.
    expect(held.attributes['pool.checkin.destroyed']).toBe(true);
    expect(tracing.openLeaseCount()).toBe(0);
    // pg-pool's own behaviour is unchanged: the waiters stay pending.
    const settledWaiters = await Promise.race([Promise.all(waiters).then(() => 'settled'), new Promise((resolve) => setImmediate(resolve, 'pending'))]);
    expect(settledWaiters).toBe('pending');
  });

  it('creating and ending pools with waiters again and again leaves nothing open, without a collection', async () => {
    for (let round = 0; round < 5; round++) await endPoolWithWaiters();
    expect(tracing.openLeaseCount()).toBe(0);
  });
});

describe('a pool object dropped with checkouts waiting', () => {
  it('ends them with an ERROR status once it is collected, and forgets them', async () => {
    tracing.exporter.reset();
    await dropPoolWithWaiters();
    expect(tracing.openLeaseCount()).toBe(WAITERS + 1);
    await collectUntil(() => tracing.openLeaseCount() === 0);
    expect(tracing.openLeaseCount()).toBe(0);
    const ended = tracing.spansNamed(GENERIC_CHECKOUT).filter((span) => span.status.code === SpanStatusCode.ERROR);
    expect(ended).toHaveLength(WAITERS + 1);
    for (const span of ended) expect(span.status.message).toMatch(/pool .*garbage-collected/);
  });
});
