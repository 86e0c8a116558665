// postgres.js leases that explain themselves (#13) on the real PostgreSQL: a reserved connection
// mid-statement is busy, one left after a statement is idle, a transaction body that stopped
// after a statement is idle in a transaction — told by the `postgres leak` span.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { createRequire } from 'node:module';
import type PostgresModule from 'postgres';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { until } from '../support/mysql2';
import { postgresConfig } from '../support/pg';
import { setupTracing } from '../support/tracing';

const THRESHOLD_MS = 150;
const tracing = setupTracing({ leakThresholdMs: THRESHOLD_MS });
const postgres = createRequire(import.meta.url)('postgres') as typeof PostgresModule;
type Sql = ReturnType<typeof postgres>;
const instances: Sql[] = [];

function newSql(): Sql {
  const { host, port, user, password, database } = postgresConfig();
  const sql = postgres({ host, port, user, password, database, max: 2, onnotice: () => {} });
  instances.push(sql);
  return sql;
}

async function leakSpan(): Promise<ReadableSpan> {
  await until('postgres leak span', () => tracing.spansNamed('postgres leak').length > 0);
  return tracing.spansNamed('postgres leak')[0]!;
}

beforeEach(() => tracing.exporter.reset());
afterEach(async () => {
  await Promise.all(instances.splice(0).map((sql) => sql.end({ timeout: 1 })));
});
afterAll(() => tracing.instrumentation.disable());

it('a reserved connection waiting on its statement is busy', async () => {
  const sql = newSql();
  const reserved = await sql.reserve();
  // postgres.js runs a query only once it is awaited or executed.
  const sleeping = reserved`select pg_sleep(0.6)`.execute();
  const span = await leakSpan();
  expect(span.attributes['pool.lease.state']).toBe('busy');
  expect(span.attributes['pool.lease.statements']).toBe(1);
  await sleeping;
  reserved.release();
});

it('a reserved connection left after its statement is idle', async () => {
  const sql = newSql();
  const reserved = await sql.reserve();
  await reserved`select 1 from pg_class limit 1`;
  const span = await leakSpan();
  expect(span.attributes['pool.lease.state']).toBe('idle');
  expect(span.attributes['pool.lease.statements']).toBe(1);
  reserved.release();
});

it('a transaction body stopped after a statement is idle in a transaction', async () => {
  const sql = newSql();
  let letGo!: () => void;
  const stopped = new Promise<void>((resolve) => (letGo = resolve));
  const transaction = sql.begin(async (tx) => {
    await tx`select 1 from pg_class limit 1`;
    await stopped;
  });
  const span = await leakSpan();
  expect(span.attributes['pool.lease.state']).toBe('idle_in_transaction');
  letGo();
  await transaction;
  expect(tracing.openLeaseCount()).toBe(0);
});
