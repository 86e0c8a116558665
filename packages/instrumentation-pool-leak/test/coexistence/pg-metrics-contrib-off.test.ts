// The other half of the dedup rule: @opentelemetry/instrumentation-pg installed but disabled
// before pg is loaded patches no pool, so pool-leak (mode auto, the default) reports the whole
// set of db.client.connection.* instruments for every pg pool, alone, with semconv's units.
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { afterAll, expect, it } from 'vitest';
import { POOL_INSTRUMENTS } from '../../src/signals/metrics';
import { loadPg, postgresConfig } from '../support/pg';
import { setupTracing } from '../support/tracing';
import { exercisePgPools } from './pg-metrics';

const contrib = new PgInstrumentation();
contrib.disable();
const tracing = setupTracing();
const pg = loadPg();

afterAll(() => tracing.instrumentation.disable());

it('instrumentation-pg off: ours report every semconv pool instrument for each pool, once', async () => {
  const databases = ['postgres', 'template1'];
  await exercisePgPools(pg, tracing, databases);
  for (const database of databases) {
    const poolName = `127.0.0.1:${postgresConfig().port}/${database}`;
    for (const instrument of POOL_INSTRUMENTS) {
      const points = (await tracing.metricPoints(instrument)).filter((point) => point.attributes['db.client.connection.pool.name'] === poolName);
      // count has its idle and used streams; every other instrument one stream per pool.
      expect(points.length, `${instrument} ${poolName}`).toBe(instrument === 'db.client.connection.count' ? 2 : 1);
    }
  }
});
