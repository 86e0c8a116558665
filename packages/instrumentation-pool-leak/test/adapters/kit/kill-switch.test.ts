// OTEL_POOL_LEAK_ENABLED=false: nothing is patched, nothing is recorded, the app works.
import { isPatchedByPoolLeak } from '../../../src/adapters/kit/patcher';
import { afterAll, expect, it } from 'vitest';
import { loadPg, postgresConfig } from '../../support/pg';
import { setupTracing } from '../../support/tracing';

process.env['OTEL_POOL_LEAK_ENABLED'] = 'false';
const tracing = setupTracing({ enabled: true });
const pg = loadPg();
const PgPool = Object.getPrototypeOf(pg.Pool.prototype).constructor as { prototype: { connect: unknown } };

afterAll(() => {
  delete process.env['OTEL_POOL_LEAK_ENABLED'];
});

it('wins over enabled: true in code: pg-pool stays unpatched and no span is made', async () => {
  expect(isPatchedByPoolLeak(PgPool.prototype.connect)).toBe(false);
  const pool = new pg.Pool({ ...postgresConfig(), max: 1 });
  const result = await pool.query('SELECT 1 AS one');
  await pool.end();
  expect(result.rows).toEqual([{ one: 1 }]);
  expect(tracing.exporter.getFinishedSpans()).toHaveLength(0);
});

it('explicit enable() calls (as registerInstrumentations makes) still patch nothing', () => {
  tracing.instrumentation.enable();
  expect(isPatchedByPoolLeak(PgPool.prototype.connect)).toBe(false);
  expect(tracing.instrumentation.getConfig().enabled).toBe(false);
});
