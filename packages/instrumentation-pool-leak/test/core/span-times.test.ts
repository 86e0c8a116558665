// Checkout spans of one pool, handed one connection in turn, are in true order with each other:
// a lease's end comes before the next lease's `pool.acquired`, as it did in the process. Real
// generic-pool and pg-pool (the test PostgreSQL), the real SDK.
import type { HrTime } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import fc from 'fast-check';
import type * as GenericPoolModule from 'generic-pool';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { SpanClock } from '../../src/core/span-clock';
import { EVENT_POOL_ACQUIRED } from '../../src/signals/semconv';
import { genericPoolsOf, requireLibrary, tick } from '../support/in-memory-resources';
import { loadPg, postgresConfig } from '../support/pg';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const pg = loadPg();
const { newPool } = genericPoolsOf(genericPool);

/** One connection, handed over this many times in a row (every lease but the first queued). */
const HANDOVERS = 300;

beforeEach(() => tracing.exporter.reset());
afterAll(() => tracing.instrumentation.disable());

interface Held {
  readonly acquiredUs: number;
  readonly endUs: number;
  readonly startUs: number;
}

/** µs since the epoch. */
const microseconds = ([seconds, nanos]: HrTime): number => seconds * 1e6 + nanos / 1e3;

/** Each granted checkout's times in µs since the epoch, in grant order. */
function heldTimes(spans: readonly ReadableSpan[]): Held[] {
  return spans
    .map((span) => {
      const acquired = span.events.find((event) => event.name === EVENT_POOL_ACQUIRED);
      expect(acquired, `${span.name} was granted`).toBeDefined();
      return {
        startUs: microseconds(span.startTime),
        acquiredUs: microseconds(acquired!.time),
        endUs: microseconds(span.endTime),
      };
    })
    .sort((a, b) => a.acquiredUs - b.acquiredUs);
}

/** The hand-overs whose times cross: the next lease granted before the previous one ended. */
function crossedHandovers(held: readonly Held[]): string[] {
  const crossed: string[] = [];
  for (let i = 1; i < held.length; i++) {
    const previous = held[i - 1]!;
    const next = held[i]!;
    if (next.acquiredUs < previous.endUs) crossed.push(`#${i}: granted ${(previous.endUs - next.acquiredUs).toFixed(0)} µs before #${i - 1} ended`);
  }
  return crossed;
}

/** Start, grant and end of one span in that order. */
function disorderedSpans(held: readonly Held[]): number {
  return held.filter((times) => !(times.startUs <= times.acquiredUs && times.acquiredUs <= times.endUs)).length;
}

describe('checkout span times across leases', () => {
  it('generic-pool, max 1: each lease ends before the next is granted', async () => {
    const pool = newPool({ max: 1 });
    await Promise.all(
      Array.from({ length: HANDOVERS }, async () => {
        const resource = await pool.acquire();
        await tick();
        await pool.release(resource);
      }),
    );
    await pool.drain();
    await pool.clear();
    const held = heldTimes(tracing.spansNamed('generic-pool checkout'));
    expect(held).toHaveLength(HANDOVERS);
    expect(crossedHandovers(held)).toEqual([]);
    expect(disorderedSpans(held)).toBe(0);
  });

  it('pg-pool with its defaults but max 1, real PostgreSQL: each lease ends before the next is granted', async () => {
    const pool = new pg.Pool({ ...postgresConfig(), max: 1 });
    try {
      await Promise.all(
        Array.from({ length: HANDOVERS }, async () => {
          const client = await pool.connect();
          try {
            await client.query('SELECT 1');
          } finally {
            client.release();
          }
        }),
      );
    } finally {
      await pool.end();
    }
    const held = heldTimes(tracing.spansNamed('pg-pool checkout'));
    expect(held).toHaveLength(HANDOVERS);
    expect(crossedHandovers(held)).toEqual([]);
    expect(disorderedSpans(held)).toBe(0);
  });
});

describe('SpanClock', () => {
  it('keeps order and gives whole nanoseconds below a second', () => {
    const clock = new SpanClock();
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e9, noNaN: true }), fc.double({ min: 0, max: 1e6, noNaN: true }), (earlier, gap) => {
        const [seconds, nanos] = clock.toSpanTime(earlier);
        expect(Number.isInteger(nanos) && nanos >= 0 && nanos < 1e9).toBe(true);
        expect(Number.isInteger(seconds)).toBe(true);
        expect(microseconds(clock.toSpanTime(earlier + gap))).toBeGreaterThanOrEqual(microseconds([seconds, nanos]));
      }),
    );
  });

  it('stands for the wall clock: now within the millisecond steps of Date.now()', () => {
    const clock = new SpanClock();
    const before = Date.now();
    const now = microseconds(clock.toSpanTime(performance.now())) / 1000;
    const after = Date.now();
    expect(now).toBeGreaterThanOrEqual(before - 2);
    expect(now).toBeLessThanOrEqual(after + 2);
  });
});
