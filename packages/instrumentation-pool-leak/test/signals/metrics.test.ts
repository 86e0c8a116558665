// db.client.connection.* metrics against a real pg pool: values equal the pool's own counters at
// each step of a scripted sequence, and two pools never share a series.
import type { DataPoint, Histogram } from '@opentelemetry/sdk-metrics';
import type { Pool } from 'pg';
import { afterAll, expect, it } from 'vitest';
import { loadPg, postgresConfig } from '../support/pg';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const pg = loadPg();

afterAll(() => tracing.instrumentation.disable());

type Labels = Record<string, unknown>;

async function valueOf(metric: string, labels: Labels): Promise<unknown> {
  const points = await tracing.metricPoints(metric);
  const matching = points.filter((point: DataPoint<unknown>) =>
    Object.entries(labels).every(([key, value]) => point.attributes[key] === value),
  );
  expect(matching.length).toBeLessThanOrEqual(1);
  return matching[0]?.value;
}

function nameOf(database: string): string {
  return `127.0.0.1:${postgresConfig().port}/${database}`;
}

async function expectMatchesPool(pool: Pool, database: string): Promise<void> {
  const name = nameOf(database);
  const poolName = 'db.client.connection.pool.name';
  expect(await valueOf('db.client.connection.count', { [poolName]: name, 'db.client.connection.state': 'idle' })).toBe(pool.idleCount);
  expect(await valueOf('db.client.connection.count', { [poolName]: name, 'db.client.connection.state': 'used' })).toBe(
    pool.totalCount - pool.idleCount,
  );
  expect(await valueOf('db.client.connection.pending_requests', { [poolName]: name })).toBe(pool.waitingCount);
  expect(await valueOf('db.client.connection.max', { [poolName]: name })).toBe(3);
}

it('follows the pool through checkouts, waits, a timeout and checkins; two pools stay apart', async () => {
  const orders = new pg.Pool({ ...postgresConfig(), database: 'postgres', max: 3, connectionTimeoutMillis: 150 });
  const reports = new pg.Pool({ ...postgresConfig(), database: 'template1', max: 3 });

  const first = await orders.connect();
  const second = await orders.connect();
  await expectMatchesPool(orders, 'postgres');
  expect(orders.totalCount - orders.idleCount).toBe(2);

  second.release();
  await expectMatchesPool(orders, 'postgres');
  expect(orders.idleCount).toBe(1);

  const third = await orders.connect();
  const fourth = await orders.connect();
  const waiting = orders.connect();
  await expectMatchesPool(orders, 'postgres');
  expect(orders.waitingCount).toBe(1);
  await expect(waiting).rejects.toThrow('timeout exceeded when trying to connect');
  await expectMatchesPool(orders, 'postgres');

  // The other pool: its own series, untouched by the first one's timeout.
  const reportClient = await reports.connect();
  await expectMatchesPool(reports, 'template1');
  reportClient.release();
  await expectMatchesPool(reports, 'template1');

  expect(await valueOf('db.client.connection.timeouts', { 'db.client.connection.pool.name': nameOf('postgres') })).toBe(1);
  expect(await valueOf('db.client.connection.timeouts', { 'db.client.connection.pool.name': nameOf('template1') })).toBeUndefined();

  for (const client of [first, third, fourth]) client.release();
  await expectMatchesPool(orders, 'postgres');

  // Histograms: one wait per grant, one use per checkin, in seconds.
  const waits = (await valueOf('db.client.connection.wait_time', { 'db.client.connection.pool.name': nameOf('postgres') })) as Histogram;
  const uses = (await valueOf('db.client.connection.use_time', { 'db.client.connection.pool.name': nameOf('postgres') })) as Histogram;
  expect(waits.count).toBe(4);
  expect(uses.count).toBe(4);
  expect(uses.max).toBeLessThan(60);
  expect(uses.min).toBeGreaterThanOrEqual(0);

  await Promise.all([orders.end(), reports.end()]);
});
