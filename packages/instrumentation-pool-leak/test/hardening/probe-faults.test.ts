// A pool whose own counters cannot be read (getters that throw) or read as garbage (negative,
// absurd, not numbers) loses its db.client.connection.* gauges, with one diag line naming it,
// and nothing else: every checkout still gets its span, the other pools keep their gauges, and
// collections after the first stay quiet. Real generic-pool and pg-pool, real SDK.
import type { DataPoint } from '@opentelemetry/sdk-metrics';
import type * as GenericPoolModule from 'generic-pool';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureDiag, type DiagCapture } from '../support/diag-capture';
import { genericPoolsOf, requireLibrary } from '../support/in-memory-resources';
import { loadPg, postgresConfig } from '../support/pg';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const pg = loadPg();
const { pools, newPool } = genericPoolsOf(genericPool);

const GAUGES = ['db.client.connection.count', 'db.client.connection.pending_requests', 'db.client.connection.max'];
const POOL_NAME = 'db.client.connection.pool.name';
const GAUGES_OFF = 'gauges are off for this pool';

let captured: DiagCapture;
beforeEach(() => {
  tracing.exporter.reset();
  captured = captureDiag();
});
afterEach(() => captured.stop());
afterAll(async () => {
  await Promise.all(pools.map(async (pool) => pool.drain().then(() => pool.clear())));
  tracing.instrumentation.disable();
});

/** Gauge points of the pool named `poolName`, over three collections (each one must stay quiet). */
async function gaugePointsOf(poolName: string): Promise<DataPoint<unknown>[]> {
  const points: DataPoint<unknown>[] = [];
  for (let collection = 0; collection < 3; collection++) {
    for (const name of GAUGES) {
      points.push(...(await tracing.metricPoints(name)).filter((point) => point.attributes[POOL_NAME] === poolName));
    }
  }
  return points;
}

/** Replaces `names` on `pool` (shadowing the library's prototype getters) with getters returning `read()`. */
function overrideGetters(pool: object, names: readonly string[], read: (name: string) => unknown): void {
  for (const name of names) Object.defineProperty(pool, name, { configurable: true, get: () => read(name) });
}

const throwing = (name: string): never => {
  throw new TypeError(`${name} is not readable here`);
};

async function cycleGenericPool(pool: GenericPoolModule.Pool<unknown>, checkouts: number): Promise<void> {
  for (let index = 0; index < checkouts; index++) {
    await tracing.inRequest('request', async () => {
      const resource = await pool.acquire();
      await pool.release(resource);
    });
  }
}

describe('generic-pool', () => {
  it('with max and pending getters that throw: every checkout gets its span, the gauges go, one diag line', async () => {
    const pool = newPool({ max: 3 });
    overrideGetters(pool, ['max', 'pending'], throwing);

    await cycleGenericPool(pool, 30);

    const spans = tracing.spansNamed('generic-pool checkout');
    expect(spans).toHaveLength(30);
    expect(spans.every((span) => span.attributes['pool.held_ms'] !== undefined)).toBe(true);
    expect(await gaugePointsOf('generic-pool')).toEqual([]);
    // The histograms are not gauges: they keep counting.
    const waits = (await tracing.metricPoints('db.client.connection.wait_time')).filter((point) => point.attributes[POOL_NAME] === 'generic-pool');
    expect(waits.map((point) => (point.value as { count: number }).count)).toEqual([30]);
    const lines = captured.linesWith(GAUGES_OFF);
    expect(lines, captured.lines.join('\n')).toHaveLength(1);
    expect(lines[0]).toContain('generic-pool');
    expect(lines[0]).toContain('is not readable here');
    expect(captured.lines).toHaveLength(1);
  });

  for (const [what, values] of [
    ['a negative pending count and an absurd idle count', { pending: -7, available: 1e308 }],
    ['a count that is a string', { borrowed: '5' }],
    ['NaN and Infinity', { available: Number.NaN, borrowed: Number.POSITIVE_INFINITY }],
  ] as const) {
    it(`reading ${what}: the gauges go with one diag line, the spans stay, later collections are quiet`, async () => {
      const pool = newPool({ max: 3 });
      overrideGetters(pool, Object.keys(values), (name) => (values as Record<string, unknown>)[name]);

      await cycleGenericPool(pool, 5);

      const spans = tracing.spansNamed('generic-pool checkout');
      expect(spans).toHaveLength(5);
      // Garbage never reaches a span attribute either.
      for (const span of spans) {
        const pendingAtRequest = span.attributes['pool.pending_at_request'];
        if (pendingAtRequest !== undefined) expect(Number.isSafeInteger(pendingAtRequest) && (pendingAtRequest as number) >= 0).toBe(true);
      }
      expect(await gaugePointsOf('generic-pool')).toEqual([]);
      expect(captured.linesWith(GAUGES_OFF), captured.lines.join('\n')).toHaveLength(1);
      expect(captured.lines).toHaveLength(1);
    });
  }
});

describe('pg-pool', () => {
  it('with counters that throw: every checkout gets its span, only that pool loses its gauges', async () => {
    const broken = new pg.Pool({ ...postgresConfig(), database: 'postgres', max: 2 });
    const healthy = new pg.Pool({ ...postgresConfig(), database: 'template1', max: 2 });
    overrideGetters(broken, ['waitingCount', 'totalCount', 'idleCount'], throwing);
    try {
      for (let index = 0; index < 20; index++) {
        await tracing.inRequest('request', async () => {
          const client = await broken.connect();
          await client.query('SELECT 1');
          client.release();
        });
      }
      const other = await healthy.connect();
      other.release();

      expect(tracing.spansNamed('pg-pool checkout')).toHaveLength(21);
      const brokenName = `127.0.0.1:${postgresConfig().port}/postgres`;
      const healthyName = `127.0.0.1:${postgresConfig().port}/template1`;
      expect(await gaugePointsOf(brokenName)).toEqual([]);
      const healthyPoints = await gaugePointsOf(healthyName);
      expect(new Set(healthyPoints.map((point) => point.value))).toEqual(new Set([0, 1, 2]));
      const lines = captured.linesWith(GAUGES_OFF);
      expect(lines, captured.lines.join('\n')).toHaveLength(1);
      expect(lines[0]).toContain(brokenName);
    } finally {
      await Promise.all([broken.end(), healthy.end()]);
    }
  });
});
