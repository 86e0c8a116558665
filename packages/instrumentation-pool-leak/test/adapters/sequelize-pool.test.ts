// The sequelize-pool adapter under Sequelize 6 and 7, on the real PostgreSQL and on the real
// MariaDB through the mysql (mysql2) and mariadb dialects, with the real SDK (#12).
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { createRequire } from 'node:module';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPatchedByPoolLeak } from '../../src/adapters/kit/patcher';
import { delay, requireLibrary } from '../support/in-memory-resources';
import { lineOf } from '../support/source-lines';
import {
  killStatement,
  openSequelize,
  poolOf,
  sequelizeTargets,
  sessionIdStatement,
  startTransaction,
  targetName,
  type AnySequelize,
  type PoolOptions,
  type SequelizeTarget,
  type UnmanagedTransaction,
} from '../support/sequelize';
import { allAttributeText, eventNamed, expectCheckedIn } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const CHECKOUT = 'sequelize-pool checkout';
const THIS_FILE = 'sequelize-pool.test.ts';
/**
 * Raw statements run as SELECTs: Sequelize 6's mariadb dialect fails any other raw query on the
 * mariadb 3.5 driver (`Cannot delete property 'meta'`), with or without the instrumentation.
 */
const SELECT = { type: 'SELECT' } as const;

const opened: AnySequelize[] = [];
function open(target: SequelizeTarget, pool?: PoolOptions): AnySequelize {
  const sequelize = openSequelize(target, pool);
  opened.push(sequelize);
  return sequelize;
}

function checkouts(): ReadableSpan[] {
  return tracing.spansNamed(CHECKOUT);
}

beforeEach(() => tracing.exporter.reset());
afterEach(async () => {
  await Promise.all(opened.splice(0).map((sequelize) => sequelize.close()));
  expect(tracing.openLeaseCount()).toBe(0);
});
afterAll(() => tracing.instrumentation.disable());

// --- The application's functions: the checkout spans must name them. ---

async function listNumbers(sequelize: AnySequelize): Promise<unknown> {
  return await sequelize.query('SELECT 1 AS n', SELECT); // line:listNumbers
}
async function holdInTransaction(sequelize: AnySequelize): Promise<UnmanagedTransaction> {
  const start = sequelize.startUnmanagedTransaction?.bind(sequelize) ?? (sequelize.transaction.bind(sequelize) as unknown as () => Promise<UnmanagedTransaction>);
  return await start(); // line:holdInTransaction
}

for (const target of sequelizeTargets()) {
  describe(targetName(target), () => {
    it('sequelize.query: one checkout span, child of the request, at the calling line, described from the config', async () => {
      const sequelize = open(target);
      await tracing.inRequest('GET /numbers', () => listNumbers(sequelize));
      const [span, ...others] = checkouts();
      expect(others).toHaveLength(0);
      expectCheckedIn(span!);
      const request = tracing.onlySpanNamed('GET /numbers');
      expect(span!.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
      expect(span!.attributes['code.function.name']).toBe('listNumbers');
      expect(String(span!.attributes['code.file.path'])).toContain(THIS_FILE);
      expect(span!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'listNumbers'));
      expect(span!.attributes['pool.library']).toBe('sequelize-pool');
      expect(span!.attributes['db.system.name']).toBe(target.dbSystem);
      expect(span!.attributes['server.address']).toBe(target.host);
      expect(span!.attributes['server.port']).toBe(target.port);
      expect(span!.attributes['db.namespace']).toBe(target.database);
      expect(span!.attributes['db.client.connection.pool.name']).toBe(`${target.host}:${target.port}/${target.database}`);
    });

    it('a managed transaction holds one lease across its statements; queries outside it take their own', async () => {
      const sequelize = open(target);
      const inside = await tracing.inRequest('POST /transfer', () =>
        sequelize.transaction(async (transaction) => {
          await sequelize.query('SELECT 1', { transaction, ...SELECT });
          await sequelize.query('SELECT 2', { transaction, ...SELECT });
          return tracing.openLeaseCount();
        }),
      );
      expect(inside).toBe(1);
      expect(checkouts()).toHaveLength(1);
      expectCheckedIn(checkouts()[0]!);
      await sequelize.query('SELECT 3', SELECT);
      expect(checkouts()).toHaveLength(2);
    });

    it('the pool used directly: acquire, release, destroy; a double release is recorded, the pool behaves as before', async () => {
      const sequelize = open(target);
      const pool = poolOf(sequelize);
      const connection = await pool.acquire();
      pool.release(connection);
      await tracing.inRequest('DELETE /twice', async () => pool.release(connection));
      const invalid = eventNamed(tracing.onlySpanNamed('DELETE /twice'), 'pool.release.invalid');
      expect(invalid?.attributes?.['pool.release.reason']).toBe('double_release');
      const again = await pool.acquire();
      await pool.destroy(again);
      const [released, destroyed] = checkouts();
      expectCheckedIn(released!);
      expectCheckedIn(destroyed!);
      expect(pool.using).toBe(0);
    });

    it('a query waiting for the only connection is served in its own context and parented to its own request', async () => {
      const sequelize = open(target, { max: 1 });
      const holder = await startTransaction(sequelize);
      const waiter = tracing.inRequest('GET /waiter', async () => {
        await sequelize.query('SELECT 1', SELECT);
        return trace.getActiveSpan()?.spanContext().spanId;
      });
      await delay(30);
      expect(poolOf(sequelize).waiting).toBe(1);
      await context.with(context.active(), () => holder.commit());
      const activeAfter = await waiter;
      const request = tracing.onlySpanNamed('GET /waiter');
      expect(activeAfter).toBe(request.spanContext().spanId);
      const waited = checkouts().find((span) => span.parentSpanContext?.spanId === request.spanContext().spanId);
      expect(waited).toBeDefined();
      expect(waited!.attributes['pool.pending_at_request']).toBe(0);
      expectCheckedIn(waited!);
    });

    it("acquire timeout: Sequelize's ConnectionAcquireTimeoutError unchanged, span ERROR, pool.exhausted names the holder", async () => {
      const sequelize = open(target, { max: 1, acquire: 150 });
      const holder = await holdInTransaction(sequelize);
      await delay(20);
      const error = await sequelize
        .query('SELECT 1', SELECT)
        .then(
          () => undefined,
          (rejection: unknown) => rejection,
        )
        .finally(() => holder.rollback());
      expect((error as Error).name).toBe('SequelizeConnectionAcquireTimeoutError');
      const failed = checkouts().find((span) => span.status.code === SpanStatusCode.ERROR);
      expect(failed).toBeDefined();
      const exhausted = eventNamed(failed!, 'pool.exhausted')?.attributes ?? {};
      const holders = exhausted['pool.holders'] as string[];
      expect(holders).toHaveLength(1);
      expect(holders[0]).toMatch(new RegExp(`^holdInTransaction \\(.*${THIS_FILE}:${lineOf(import.meta.url, 'holdInTransaction')}\\)`));
      expect(exhausted['pool.holders.count']).toBe(1);
      expect(exhausted['db.client.connection.max']).toBe(1);
    });

    it('the server kills the connection mid-lease: the application sees the driver error, the lease ends, nothing stays open', async () => {
      const sequelize = open(target);
      const killer = open(target);
      const transaction = await startTransaction(sequelize);
      const [row] = (await sequelize.query(sessionIdStatement(target), { transaction, type: 'SELECT' })) as { id: unknown }[];
      await killer.query(killStatement(target, Number(row!.id)));
      await delay(50);
      await expect(sequelize.query('SELECT 1', { transaction, ...SELECT })).rejects.toThrow();
      await transaction.rollback().catch(() => undefined);
      await delay(50);
      const [killed] = checkouts().filter((span) => span.attributes['code.function.name'] !== 'Object.<anonymous>');
      expect(checkouts().every((span) => span.ended)).toBe(true);
      expect(killed).toBeDefined();
      expect(tracing.openLeaseCount()).toBe(0);
    });

    it('no user name or password in any exported attribute', async () => {
      const sequelize = open(target);
      await sequelize.query('SELECT 1', SELECT);
      const text = allAttributeText(tracing.exporter.getFinishedSpans());
      expect(text).toContain(`${target.host}:${target.port}/${target.database}`);
      expect(text).not.toContain(target.password);
      expect(text).not.toMatch(new RegExp(`\\b${target.user}@`));
    });
  });
}

describe('disable and enable', () => {
  const target = sequelizeTargets()[0]!;
  const sequelizePools = [
    requireLibrary<{ Pool: { prototype: Record<string, unknown> } }>('sequelize-pool'),
    createRequire(createRequire(import.meta.url).resolve('sequelize'))('sequelize-pool') as { Pool: { prototype: Record<string, unknown> } },
  ];
  const sequelize6 = requireLibrary<{ Sequelize: { prototype: Record<string, unknown> } }>('sequelize');
  const patched = () => [
    ...sequelizePools.flatMap(({ Pool }) => ['acquire', 'release', 'destroy'].map((name) => isPatchedByPoolLeak(Pool.prototype[name]))),
    isPatchedByPoolLeak(sequelize6.Sequelize.prototype['query']),
    isPatchedByPoolLeak(sequelize6.Sequelize.prototype['transaction']),
  ];

  it('disable() restores every copy of sequelize-pool and Sequelize; enable() patches them again', async () => {
    expect(patched().every(Boolean)).toBe(true);
    tracing.instrumentation.disable();
    try {
      expect(patched().some(Boolean)).toBe(false);
      await open(target).query('SELECT 1', SELECT);
      expect(checkouts()).toHaveLength(0);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(patched().every(Boolean)).toBe(true);
    await open(target).query('SELECT 1', SELECT);
    expect(checkouts()).toHaveLength(1);
  });
});
