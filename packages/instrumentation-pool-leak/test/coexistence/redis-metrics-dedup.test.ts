// node-redis (5.12+) has metrics of its own: with OpenTelemetry.init({ metrics }) it counts
// db.client.connection.count per connection (group connection-basic) and records
// db.client.connection.wait_time for pool waits (connection-advanced). On the same meter
// provider, pool-leak (mode auto) then leaves those two to node-redis for redis pools and keeps
// the rest (max, pending_requests, use_time); the real redis-server, the real node-redis.
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { afterAll, expect, it } from 'vitest';
import { describeWithRedis, loadRedis, redisUrl } from '../support/redis';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const redis = loadRedis();

class CollectOnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
const reader = new CollectOnDemandReader();
const meterProvider = new MeterProvider({ readers: [reader] });
tracing.instrumentation.setMeterProvider(meterProvider);

const OURS = 'opentelemetry-instrumentation-pool-leak';
const NODE_REDIS = 'node-redis';

afterAll(() => tracing.instrumentation.disable());

/** The scopes reporting each db.client.connection.* instrument. */
async function reportersByInstrument(): Promise<Record<string, string[]>> {
  const reporters: Record<string, Set<string>> = {};
  for (const instrument of [
    'db.client.connection.count',
    'db.client.connection.wait_time',
    'db.client.connection.max',
    'db.client.connection.pending_requests',
    'db.client.connection.use_time',
  ]) {
    const { resourceMetrics } = await reader.collect();
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.descriptor.name === instrument && metric.dataPoints.length > 0) (reporters[instrument] ??= new Set()).add(scope.scope.name);
      }
    }
  }
  return Object.fromEntries(Object.entries(reporters).map(([name, scopes]) => [name, [...scopes].sort()]));
}

describeWithRedis('redis pools beside node-redis metrics', () => {
  it('count and wait_time come from node-redis only; ours keep max, pending_requests and use_time', async () => {
    // node-redis types the provider against the API copy it was built with: the same interface.
    const config = {
      metrics: { enabled: true, meterProvider, enabledMetricGroups: ['connection-basic', 'connection-advanced'] },
    } as unknown as Parameters<typeof redis.OpenTelemetry.init>[0];
    redis.OpenTelemetry.init(config);
    const pool = redis.createClientPool({ url: redisUrl() }, { minimum: 1, maximum: 1 });
    pool.on('error', () => {});
    await pool.connect();
    try {
      // Two tasks on a pool of one: the second waits, so node-redis records a wait.
      await tracing.inRequest('request', () => Promise.all([pool.set('pool-leak:metrics', '1'), pool.get('pool-leak:metrics')]));
      expect(await reportersByInstrument()).toEqual({
        'db.client.connection.count': [NODE_REDIS],
        'db.client.connection.wait_time': [NODE_REDIS],
        'db.client.connection.max': [OURS],
        'db.client.connection.pending_requests': [OURS],
        'db.client.connection.use_time': [OURS],
      });
    } finally {
      pool.destroy();
    }
  });
});
