// One set of pool metrics per pool: pg-pool beside the real @opentelemetry/instrumentation-pg,
// both on one meter provider, against the real PostgreSQL. instrumentation-pg reports
// db.client.connection.count, .pending_requests and .max for the pools it patched; pool-leak
// then reports only what it does not (wait_time, use_time, timeouts and its own counters).
// `poolMetrics: 'all'` brings the duplicates back (the tests can fail), `'own'` drops every
// semconv pool instrument of ours; a Prometheus exposition of the default has no duplicate
// series. Each test file fixes one creation order.
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Order } from './coexistence';
import { parseExposition } from '../../../../test/observability/exposition';
import type { PoolMetricsMode } from '../../src';
import { POOL_INSTRUMENTS } from '../../src/signals/metrics';
import { captureDiag, type DiagCapture } from '../support/diag-capture';
import { loadPg, postgresConfig, type Pg } from '../support/pg';
import { setupTracing, type TestTracing } from '../support/tracing';

const OURS = 'opentelemetry-instrumentation-pool-leak';
const CONTRIB = '@opentelemetry/instrumentation-pg';
const POOL_NAME = 'db.client.connection.pool.name';
const CONTRIB_GAUGES = ['db.client.connection.count', 'db.client.connection.pending_requests', 'db.client.connection.max'];

class CollectOnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

interface Stream {
  readonly scope: string;
  readonly instrument: string;
  readonly unit: string;
  readonly pool: string;
  readonly attributes: Readonly<Record<string, unknown>>;
}

async function streamsOf(reader: MetricReader): Promise<Stream[]> {
  const { resourceMetrics } = await reader.collect();
  return resourceMetrics.scopeMetrics.flatMap((scope) =>
    scope.metrics.flatMap((metric: MetricData) =>
      metric.dataPoints.map((point) => ({
        scope: scope.scope.name,
        instrument: metric.descriptor.name,
        unit: metric.descriptor.unit,
        pool: String(point.attributes[POOL_NAME]),
        attributes: point.attributes,
      })),
    ),
  );
}

/** For each `instrument pool`: the scopes that report it. */
function reportersByInstrumentAndPool(streams: readonly Stream[]): Map<string, string[]> {
  const reporters = new Map<string, Set<string>>();
  for (const stream of streams) {
    if (!stream.instrument.startsWith('db.client.connection.')) continue;
    const key = `${stream.instrument} ${stream.pool}`;
    reporters.set(key, (reporters.get(key) ?? new Set()).add(stream.scope));
  }
  return new Map([...reporters].map(([key, scopes]) => [key, [...scopes].sort()]));
}

/** One pool per database, each with checkouts in a request, a waiter, and a checkout that times out. */
export async function exercisePgPools(pg: Pg, tracing: TestTracing, databases: readonly string[]): Promise<void> {
  for (const database of databases) {
    const pool = new pg.Pool({ ...postgresConfig(), database, max: 2, connectionTimeoutMillis: 10_000 });
    try {
      await tracing.inRequest('request', async () => {
        const first = await pool.connect();
        const second = await pool.connect();
        // Both connections are open: a short timeout now only times the wait for a free one
        // (pg-pool reads it at each connect), never a slow connection set-up on a busy machine.
        pool.options.connectionTimeoutMillis = 50;
        await expect(pool.connect()).rejects.toThrow('timeout exceeded when trying to connect');
        pool.options.connectionTimeoutMillis = 10_000;
        const waiting = pool.connect();
        await first.query('SELECT 1');
        first.release();
        (await waiting).release();
        second.release();
      });
    } finally {
      await pool.end();
    }
  }
}

/**
 * Declares the dedup tests with both instrumentations created in `order` (creation installs the
 * require hook, so it decides whose wrapper of Pool.prototype.connect is outermost).
 */
export function describePgMetricsDedup(order: Order): void {
  const contribFirst = order === 'contrib first' ? new PgInstrumentation() : undefined;
  const tracing = setupTracing();
  const contrib = contribFirst ?? new PgInstrumentation();
  contrib.setTracerProvider(tracing.provider);
  const pg = loadPg();

  /** A fresh meter provider for both instrumentations: each test starts from empty series. */
  function freshMeters(): CollectOnDemandReader {
    const reader = new CollectOnDemandReader();
    const provider = new MeterProvider({ readers: [reader] });
    tracing.instrumentation.setMeterProvider(provider);
    contrib.setMeterProvider(provider);
    return reader;
  }

  const poolNameOf = (database: string) => `127.0.0.1:${postgresConfig().port}/${database}`;
  const DATABASES = ['postgres', 'template1'];

  async function runWith(mode: PoolMetricsMode): Promise<Stream[]> {
    tracing.instrumentation.setConfig({ poolMetrics: mode });
    const reader = freshMeters();
    await exercisePgPools(pg, tracing, DATABASES);
    return streamsOf(reader);
  }

  let captured: DiagCapture;
  beforeEach(() => {
    captured = captureDiag();
  });
  afterEach(() => captured.stop());
  afterAll(() => {
    contrib.disable();
    tracing.instrumentation.disable();
  });

  describe('pg-pool beside instrumentation-pg', () => {
    it('auto (the default): exactly one reporter per instrument name per pool, and ours complete the set', async () => {
      const streams = await runWith('auto');
      const reporters = reportersByInstrumentAndPool(streams);
      for (const database of DATABASES) {
        const pool = poolNameOf(database);
        for (const instrument of CONTRIB_GAUGES) expect(reporters.get(`${instrument} ${pool}`), `${instrument} ${pool}`).toEqual([CONTRIB]);
        for (const instrument of ['db.client.connection.wait_time', 'db.client.connection.use_time', 'db.client.connection.timeouts']) {
          expect(reporters.get(`${instrument} ${pool}`), `${instrument} ${pool}`).toEqual([OURS]);
        }
      }
      for (const [key, scopes] of reporters) expect(scopes, key).toHaveLength(1);
      // One stream per attribute set too: count has exactly its idle and used streams per pool.
      const countStreams = streams.filter((stream) => stream.instrument === 'db.client.connection.count' && stream.pool === poolNameOf('postgres'));
      expect(countStreams.map((stream) => stream.attributes['db.client.connection.state']).sort()).toEqual(['idle', 'used']);
      expect(captured.lines).toEqual([]);
    });

    it('all: both report the gauges (the duplicates this option brings back)', async () => {
      const reporters = reportersByInstrumentAndPool(await runWith('all'));
      for (const instrument of CONTRIB_GAUGES) expect(reporters.get(`${instrument} ${poolNameOf('postgres')}`)).toEqual([CONTRIB, OURS].sort());
    });

    it('own: none of our db.client.connection.* series; instrumentation-pg keeps its own', async () => {
      const streams = await runWith('own');
      expect(streams.filter((stream) => stream.scope === OURS && stream.instrument.startsWith('db.client.connection.'))).toEqual([]);
      const reporters = reportersByInstrumentAndPool(streams);
      for (const instrument of CONTRIB_GAUGES) expect(reporters.get(`${instrument} ${poolNameOf('postgres')}`)).toEqual([CONTRIB]);
    });

    it('our units are the ones semconv gives', async () => {
      const streams = await runWith('all');
      const units = new Map(streams.filter((stream) => stream.scope === OURS).map((stream) => [stream.instrument, stream.unit]));
      expect(Object.fromEntries(POOL_INSTRUMENTS.map((instrument) => [instrument, units.get(instrument)]))).toEqual({
        'db.client.connection.count': '{connection}',
        'db.client.connection.max': '{connection}',
        'db.client.connection.pending_requests': '{request}',
        'db.client.connection.timeouts': '{timeout}',
        'db.client.connection.wait_time': 's',
        'db.client.connection.use_time': 's',
      });
    });
  });

  describe('the Prometheus exposition (exporter-prometheus serializer)', () => {
    /** Series keys without the scope labels: what a scrape that drops them, or a sum by pool, sees. */
    function duplicateSeries(text: string): string[] {
      const seen = new Map<string, number>();
      for (const sample of parseExposition(text)) {
        const labels = Object.entries(sample.labels)
          .filter(([name]) => !name.startsWith('otel_scope_'))
          .sort(([a], [b]) => a.localeCompare(b));
        const key = `${sample.name}${JSON.stringify(labels)}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      return [...seen].filter(([, count]) => count > 1).map(([key]) => key);
    }

    async function exposition(mode: PoolMetricsMode): Promise<string> {
      tracing.instrumentation.setConfig({ poolMetrics: mode });
      const reader = freshMeters();
      await exercisePgPools(pg, tracing, DATABASES);
      const { resourceMetrics } = await reader.collect();
      return new PrometheusSerializer().serialize(resourceMetrics);
    }

    it('pg with both instrumentations: no duplicate series, no conflicting UNIT', async () => {
      const text = await exposition('auto');
      expect(text).toContain('db_client_connection_count');
      expect(text).toContain('db_client_connection_wait_time_bucket');
      expect(duplicateSeries(text)).toEqual([]);
      expect(captured.linesWith('Conflicting')).toEqual([]);
    });

    it('with poolMetrics all, the same check finds the duplicates', async () => {
      const text = await exposition('all');
      expect(duplicateSeries(text).some((key) => key.startsWith('db_client_connection_count'))).toBe(true);
      expect(captured.linesWith('Conflicting UNIT')).not.toEqual([]);
    });
  });
}
