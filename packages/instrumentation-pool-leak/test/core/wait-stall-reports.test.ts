// Stalled waiters and the verdict on every starvation, on the real servers: pg-pool (pg) on
// PostgreSQL, mysql2 on MariaDB, generic-pool with in-memory resources, each at its default
// infinite wait and with a timeout. Three starvations: leaked connections (idle holders), slow
// queries (holders in a long statement), an undersized pool (2 connections, 20 short queries).
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { describeWithMariaDb } from '../support/mariadb';
import { until } from '../support/mysql2';
import { eventNamed, eventNames } from '../support/spans';
import { genericPoolDriver, mysql2Driver, pgDriver, type Held, type StallDriver, type StallPool } from '../support/stall-drivers';
import { setupTracing } from '../support/tracing';

const WAIT_THRESHOLD_MS = 150;
const tracing = setupTracing({ leakThresholdMs: 0, waitThresholdMs: WAIT_THRESHOLD_MS });
const drivers = [pgDriver(), mysql2Driver(), genericPoolDriver()];
const pools: StallPool[] = [];

beforeEach(() => tracing.exporter.reset());
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
  tracing.instrumentation.disable();
});

function newPool(driver: StallDriver, max: number, timeoutMs?: number): StallPool {
  const pool = driver.newPool(max, timeoutMs);
  pools.push(pool);
  return pool;
}

/**
 * The stalled-waiter spans of the driver's library so far whose waiter was called from `caller`
 * (a checkout opening a new connection on a loaded machine may stall too, with no one to blame).
 */
const stallSpans = (driver: StallDriver, caller: string): ReadableSpan[] =>
  tracing.spansNamed(`${driver.library} wait.stalled`).filter((span) => String(span.attributes['pool.call_path']).includes(caller));

/** The `pool.wait.stalled` count with this verdict, over the library's pools. */
async function stalledCount(driver: StallDriver, cause: string): Promise<number> {
  const points = await tracing.metricPoints('pool.wait.stalled');
  return sumOf(points.filter((point) => point.attributes['pool.exhaustion.cause'] === cause && poolOf(driver, point.attributes)));
}

async function timeoutCount(driver: StallDriver, cause: string): Promise<number> {
  const points = await tracing.metricPoints('db.client.connection.timeouts');
  return sumOf(points.filter((point) => point.attributes['pool.exhaustion.cause'] === cause && poolOf(driver, point.attributes)));
}

function poolOf(driver: StallDriver, attributes: Record<string, unknown>): boolean {
  return driver.ownsPoolName(String(attributes['db.client.connection.pool.name']));
}

function sumOf(points: readonly { readonly value: unknown }[]): number {
  return points.reduce((sum, point) => sum + (point.value as number), 0);
}

/** Takes the pool's `max` connections and keeps them; with `statement`, runs it on each first (not awaited). */
async function fillPool(driver: StallDriver, pool: StallPool, max: number, statement?: string): Promise<{ held: Held[]; running: Promise<unknown>[] }> {
  const held: Held[] = [];
  const running: Promise<unknown>[] = [];
  async function leakConnection() {
    const connection = await pool.acquire();
    held.push(connection);
    if (pool.query === undefined) return;
    if (statement === undefined) await pool.query(connection, 'SELECT 1 AS kept');
    else running.push(pool.query(connection, statement).catch((error: unknown) => error));
  }
  for (let index = 0; index < max; index++) await tracing.inRequest('POST /leak', leakConnection);
  return { held, running };
}

/** A checkout that waits; `settled` tells whether the application saw it end. */
function startWaiter(pool: StallPool): { readonly done: Promise<unknown>; readonly settled: () => boolean } {
  let settled = false;
  async function loadReport() {
    try {
      const connection = await pool.acquire();
      pool.release(connection);
      return 'granted';
    } finally {
      settled = true;
    }
  }
  const done = tracing.inRequest('GET /report', loadReport);
  return { done, settled: () => settled };
}

/** Connections opened before a burst, so the burst's holders are all granted after it asked. */
async function warm(pool: StallPool, max: number): Promise<void> {
  const held = await Promise.all(Array.from({ length: max }, () => pool.acquire()));
  held.forEach((connection) => pool.release(connection));
}

/** 20 concurrent checkouts, each running a short statement (or holding a resource 50 ms). */
function burst(driver: StallDriver, pool: StallPool): Promise<unknown[]> {
  async function shortQuery() {
    const connection = await pool.acquire();
    try {
      if (pool.query === undefined || driver.shortStatement === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      else await pool.query(connection, driver.shortStatement);
    } finally {
      pool.release(connection);
    }
    return 'done';
  }
  return Promise.all(Array.from({ length: 20 }, () => tracing.inRequest('GET /catalog', shortQuery).catch((error: unknown) => error)));
}

function expectStall(span: ReadableSpan, cause: string, holders: number, state: RegExp): void {
  expect(span.attributes['pool.exhaustion.cause']).toBe(cause);
  const named = span.attributes['pool.holders'] as string[];
  expect(named).toHaveLength(holders);
  for (const holder of named) expect(holder).toMatch(state);
  expect(span.attributes['pool.holders.count']).toBe(holders);
  expect(span.attributes['db.client.connection.max']).toBe(2);
  expect(span.attributes['pool.pending']).toBeGreaterThanOrEqual(1);
  expect(span.attributes['pool.wait_ms']).toBeGreaterThanOrEqual(WAIT_THRESHOLD_MS);
}

function describeDriver(driver: StallDriver, body: () => void): void {
  if (driver.library === 'mysql2') describeWithMariaDb(driver.library, body);
  else describe(driver.library, body);
}

for (const driver of drivers) {
  describeDriver(driver, () => {
    it('at the default infinite wait, a checkout behind 2 leaked connections stalls, naming both idle holders: leaked_connections; it still waits, and is granted when one comes back', async () => {
      const pool = newPool(driver, 2);
      const { held } = await fillPool(driver, pool, 2);
      const before = await stalledCount(driver, 'leaked_connections');
      const waiter = startWaiter(pool);
      await until('the wait.stalled span', () => stallSpans(driver, 'loadReport').length > 0);
      expect(waiter.settled()).toBe(false);

      const [stall] = stallSpans(driver, 'loadReport');
      expectStall(stall!, 'leaked_connections', 2, /^.*leakConnection.* held \d+ ms — idle \d+ ms/);
      expect(String(stall!.attributes['pool.call_path'])).toContain('loadReport');
      expect(stall!.ended).toBe(true);

      pool.release(held.shift()!);
      expect(await waiter.done).toBe('granted');
      held.forEach((connection) => pool.release(connection));
      expect(stallSpans(driver, 'loadReport')).toHaveLength(1);
      // The stall span is a child of the waiting request; its checkout span has the event, before the grant.
      const request = tracing.onlySpanNamed('GET /report');
      expect(stall!.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
      const checkout = tracing.spansNamed(`${driver.library} checkout`).find((span) => String(span.attributes['pool.call_path']).includes('loadReport'))!;
      expect(eventNames(checkout).slice(0, 2)).toEqual(['pool.wait.stalled', 'pool.acquired']);
      const event = eventNamed(checkout, 'pool.wait.stalled')!;
      expect(event.attributes!['pool.exhaustion.cause']).toBe('leaked_connections');
      expect(event.attributes!['pool.holders']).toEqual(stall!.attributes['pool.holders']);
      expect(await stalledCount(driver, 'leaked_connections')).toBe(before + 1);
    });

    if (driver.slowStatement !== undefined) {
      it('holders busy in a long statement: slow_queries, holders busy', async () => {
        const pool = newPool(driver, 2);
        const { held, running } = await fillPool(driver, pool, 2, driver.slowStatement);
        const before = await stalledCount(driver, 'slow_queries');
        const waiter = startWaiter(pool);
        await until('the wait.stalled span', () => stallSpans(driver, 'loadReport').length > 0);
        expect(waiter.settled()).toBe(false);
        expectStall(stallSpans(driver, 'loadReport')[0]!, 'slow_queries', 2, / held \d+ ms — busy \d+ ms/);
        await driver.cancelSlowStatements();
        await Promise.all(running);
        held.forEach((connection) => pool.release(connection));
        expect(await waiter.done).toBe('granted');
        expect(await stalledCount(driver, 'slow_queries')).toBe(before + 1);
      });
    }

    it('a pool of 2 under 20 concurrent short checkouts: every stall says undersized_pool', async () => {
      const pool = newPool(driver, 2);
      await warm(pool, 2);
      const before = await stalledCount(driver, 'undersized_pool');
      const results = await burst(driver, pool);
      expect(results).toEqual(Array.from({ length: 20 }, () => 'done'));
      const stalls = stallSpans(driver, 'shortQuery');
      expect(stalls.length).toBeGreaterThan(0);
      for (const stall of stalls) expect(stall.attributes['pool.exhaustion.cause']).toBe('undersized_pool');
      expect(await stalledCount(driver, 'undersized_pool')).toBe(before + stalls.length);
    });
  });
}

/** What the instrumentation put on the pool's own exhausted error. */
interface EnrichedError {
  readonly poolHolders?: readonly string[];
  readonly poolExhaustionCause?: string;
}

/** A checkout that fails on the exhausted pool, in its own request; resolves with the error. */
function starvedCheckout(pool: StallPool): Promise<EnrichedError & Error> {
  async function loadStarved() {
    return pool.acquire().then(
      () => {
        throw new Error('the starved checkout was granted');
      },
      (error: unknown) => error as EnrichedError & Error,
    );
  }
  return tracing.inRequest('GET /starved', loadStarved);
}

function exhaustedEventCause(driver: StallDriver): unknown {
  const failed = tracing.spansNamed(`${driver.library} checkout`).filter((span) => span.status.code === 2);
  expect(failed.length).toBeGreaterThan(0);
  const causes = new Set(failed.map((span) => eventNamed(span, 'pool.exhausted')?.attributes?.['pool.exhaustion.cause']));
  expect(causes.size).toBe(1);
  return [...causes][0];
}

for (const driver of drivers) {
  // mysql2 has no acquire timeout: its pool is exhausted when the wait queue is full (queueLimit).
  const limited = driver.library === 'mysql2';
  const limit = (timeoutMs: number) => (limited ? 1 : timeoutMs);
  describeDriver(driver, () => {
    describe(limited ? 'with queueLimit: 1' : 'with a timeout set', () => {
      it('leaked connections: the error carries both idle holders and leaked_connections, as do pool.exhausted and the timeouts counter', async () => {
        const pool = newPool(driver, 2, limit(300));
        const { held } = await fillPool(driver, pool, 2);
        const before = await timeoutCount(driver, 'leaked_connections');
        // mysql2: the one place in the queue is taken, so the next checkout is refused at once.
        const queued = limited ? startWaiter(pool) : undefined;
        const error = await starvedCheckout(pool);
        expect(error.poolExhaustionCause).toBe('leaked_connections');
        expect(error.poolHolders).toHaveLength(2);
        for (const holder of error.poolHolders!) expect(holder).toMatch(/leakConnection.* held \d+ ms — idle \d+ ms/);
        expect(Object.keys(error)).not.toContain('poolExhaustionCause');
        held.forEach((connection) => pool.release(connection));
        if (queued !== undefined) expect(await queued.done).toBe('granted');
        expect(exhaustedEventCause(driver)).toBe('leaked_connections');
        if (!limited) expect(await timeoutCount(driver, 'leaked_connections')).toBe(before + 1);
      });

      if (driver.slowStatement !== undefined && !limited) {
        it('holders in a long statement: slow_queries on the error, the event and the counter', async () => {
          const pool = newPool(driver, 2, 300);
          const { held, running } = await fillPool(driver, pool, 2, driver.slowStatement);
          const before = await timeoutCount(driver, 'slow_queries');
          const error = await starvedCheckout(pool);
          await driver.cancelSlowStatements();
          await Promise.all(running);
          held.forEach((connection) => pool.release(connection));
          expect(error.poolExhaustionCause).toBe('slow_queries');
          for (const holder of error.poolHolders!) expect(holder).toMatch(/ held \d+ ms — busy \d+ ms/);
          expect(exhaustedEventCause(driver)).toBe('slow_queries');
          expect(await timeoutCount(driver, 'slow_queries')).toBe(before + 1);
        });
      }

      if (!limited) {
        it('a pool of 2 under 20 concurrent short checkouts: the ones that time out say undersized_pool', async () => {
          const pool = newPool(driver, 2, 200);
          await warm(pool, 2);
          const before = await timeoutCount(driver, 'undersized_pool');
          const results = await burst(driver, pool);
          const errors = results.filter((result): result is EnrichedError => result !== 'done');
          expect(errors.length).toBeGreaterThan(0);
          for (const error of errors) expect(error.poolExhaustionCause).toBe('undersized_pool');
          expect(exhaustedEventCause(driver)).toBe('undersized_pool');
          expect(await timeoutCount(driver, 'undersized_pool')).toBe(before + errors.length);
        });
      }
    });
  });
}
