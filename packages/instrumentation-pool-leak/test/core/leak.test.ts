// Leak threshold on a real pg pool: event, leak span exported while the lease is still out,
// counter by call site, and the "returned" event.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadPg, postgresConfig } from '../support/pg';
import { eventNamed } from '../support/spans';
import { setupTracing } from '../support/tracing';

const THRESHOLD_MS = 200;
const tracing = setupTracing({ leakThresholdMs: THRESHOLD_MS });
const pg = loadPg();
const pool = new pg.Pool({ ...postgresConfig(), max: 2 });

beforeEach(() => tracing.exporter.reset());
afterAll(async () => {
  await pool.end();
  tracing.instrumentation.disable();
});


async function leakCounterFor(functionName: string): Promise<number> {
  const points = await tracing.metricPoints('pool.leak.suspected');
  return points
    .filter((point) => point.attributes['code.function.name'] === functionName)
    .reduce((sum, point) => sum + Number(point.value), 0);
}

describe('leak threshold', () => {
  it('a lease held past the threshold: leak span exported before the checkin, event, counter, returned', async () => {
    let leakSpansWhileHeld = -1;
    async function holdTooLong() {
      const client = await pool.connect();
      await sleep(THRESHOLD_MS * 2);
      leakSpansWhileHeld = tracing.spansNamed('pg-pool leak').length;
      client.release();
    }
    await tracing.inRequest('GET /slow-report', holdTooLong);
    expect(leakSpansWhileHeld).toBe(1);

    const [checkout] = tracing.spansNamed('pg-pool checkout');
    const [leak] = tracing.spansNamed('pg-pool leak');
    const [request] = tracing.spansNamed('GET /slow-report');
    const suspected = eventNamed(checkout!, 'pool.leak.suspected');
    expect(Number(suspected?.attributes?.['pool.held_ms'])).toBeGreaterThanOrEqual(THRESHOLD_MS);
    expect(checkout!.events.filter((event) => event.name === 'pool.leak.suspected')).toHaveLength(1);
    expect(Number(eventNamed(checkout!, 'pool.leak.returned')?.attributes?.['pool.held_ms'])).toBeGreaterThanOrEqual(THRESHOLD_MS * 2);

    // The leak span: child of the checkout's parent, linked to the checkout, same call site.
    expect(leak!.parentSpanContext?.spanId).toBe(request!.spanContext().spanId);
    expect(leak!.links.map((link) => link.context.spanId)).toEqual([checkout!.spanContext().spanId]);
    for (const key of ['code.function.name', 'code.file.path', 'code.line.number', 'code.stacktrace', 'db.client.connection.pool.name']) {
      expect(leak!.attributes[key]).toEqual(checkout!.attributes[key]);
    }
    expect(leak!.attributes['code.function.name']).toBe('holdTooLong');
    expect(Number(leak!.attributes['pool.held_ms'])).toBeGreaterThanOrEqual(THRESHOLD_MS);
    expect(leak!.duration[0] * 1e3 + leak!.duration[1] / 1e6).toBeLessThan(5);

    expect(await leakCounterFor('holdTooLong')).toBe(1);
  });

  it('a lease returned under the threshold: no event, no leak span, no count', async () => {
    async function quickEnough() {
      const client = await pool.connect();
      await sleep(THRESHOLD_MS / 2);
      client.release();
    }
    await tracing.inRequest('GET /quick', quickEnough);
    await sleep(THRESHOLD_MS);
    const [checkout] = tracing.spansNamed('pg-pool checkout');
    expect(checkout!.events.map((event) => event.name)).toEqual(['pool.acquired']);
    expect(tracing.spansNamed('pg-pool leak')).toHaveLength(0);
    expect(await leakCounterFor('quickEnough')).toBe(0);
  });

  it('a never-returned lease is reported once, however long it stays out', async () => {
    async function neverReturns() {
      const client = await pool.connect();
      client.on('error', () => {});
      return client;
    }
    const leaked = await tracing.inRequest('GET /leaky', neverReturns);
    await sleep(THRESHOLD_MS * 3);
    expect(tracing.spansNamed('pg-pool leak').filter((span) => span.attributes['code.function.name'] === 'neverReturns')).toHaveLength(1);
    expect(await leakCounterFor('neverReturns')).toBe(1);
    leaked.release();
  });
});
