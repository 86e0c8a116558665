// pool.exhausted on a real pg pool: the checkout that times out names who holds the pool.
import type { PoolClient } from 'pg';
import { createServer, type Socket } from 'node:net';
import { relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadPg, postgresConfig } from '../support/pg';
import { eventNamed, eventNames } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing({ leakThresholdMs: 0 });
const pg = loadPg();
const THIS_FILE = 'pool-exhausted.test.ts';
const HOLD_HEADSTART_MS = 60;

const pools: InstanceType<typeof pg.Pool>[] = [];
function newPool(options: Partial<import('pg').PoolConfig> = {}) {
  const pool = new pg.Pool({ ...postgresConfig(), max: 2, connectionTimeoutMillis: 300, ...options });
  pools.push(pool);
  return pool;
}

beforeEach(() => tracing.exporter.reset());
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
  tracing.instrumentation.disable();
});

describe('pool.exhausted', () => {
  it('a timed-out checkout names both holders, longest-held first, with file:line and held time', async () => {
    const pool = newPool();
    const held: PoolClient[] = [];
    async function holdA() {
      held.push(await pool.connect());
    }
    async function holdB() {
      held.push(await pool.connect());
    }
    await tracing.inRequest('GET /a', holdA);
    await sleep(HOLD_HEADSTART_MS);
    await tracing.inRequest('GET /b', holdB);

    const error = await tracing.inRequest('GET /starved', () => pool.connect().then(() => undefined, (failure: unknown) => failure));
    expect((error as Error).message).toBe('timeout exceeded when trying to connect');
    held.forEach((client) => client.release());

    const spans = tracing.spansNamed('pg-pool checkout');
    const failed = spans.find((span) => span.status.code === 2)!;
    const exhausted = eventNamed(failed, 'pool.exhausted');
    expect(eventNames(failed)).toEqual(['pool.exhausted', 'exception']);
    const holders = exhausted!.attributes!['pool.holders'] as string[];
    expect(holders).toHaveLength(2);
    const [first, second] = holders;
    const spanOf = (name: string) => spans.find((span) => span.attributes['code.function.name'] === name)!;
    for (const [holder, name] of [
      [first, 'holdA'],
      [second, 'holdB'],
    ] as const) {
      const checkout = spanOf(name);
      // The call path: the holder's own frame first (path relative to the working directory).
      const file = relative(process.cwd(), String(checkout.attributes['code.file.path']));
      expect(file.endsWith(THIS_FILE)).toBe(true);
      expect(holder!.startsWith(`${name} (${file}:${checkout.attributes['code.line.number']}) ← `)).toBe(true);
      expect(holder).toMatch(/ held \d+ ms — (busy|idle) \d+ ms/);
    }
    const heldMs = holders.map((holder) => Number(/held (\d+) ms/.exec(holder)![1]));
    // A was taken HOLD_HEADSTART_MS before B and both were still held when the third timed out (300 ms).
    expect(heldMs[0]! - heldMs[1]!).toBeGreaterThanOrEqual(HOLD_HEADSTART_MS - 5);
    expect(heldMs[1]).toBeGreaterThanOrEqual(290);
    expect(exhausted!.attributes!['pool.holders.count']).toBe(2);
    expect(exhausted!.attributes!['db.client.connection.max']).toBe(2);
    expect(exhausted!.attributes!['pool.pending']).toBe(0);
  });

  it('holders are capped at 10, the count is not, and waiters still queued are reported as pending', async () => {
    const pool = newPool({ max: 12, connectionTimeoutMillis: 400 });
    const held: PoolClient[] = [];
    async function hold() {
      held.push(await pool.connect());
    }
    for (let index = 0; index < 12; index += 1) await tracing.inRequest('GET /hold', hold);
    // Two waiters; the first one asked 150 ms earlier, so it times out while the second still waits.
    const first = tracing.inRequest('GET /waiter-1', () => pool.connect().then(() => 'granted', () => 'failed'));
    await sleep(150);
    const second = tracing.inRequest('GET /waiter-2', () => pool.connect().then(() => 'granted', () => 'failed'));
    expect(await first).toBe('failed');
    expect(await second).toBe('failed');
    held.forEach((client) => client.release());

    const failed = tracing.spansNamed('pg-pool checkout').filter((span) => span.status.code === 2);
    expect(failed).toHaveLength(2);
    const firstEvent = eventNamed(failed[0]!, 'pool.exhausted')!;
    expect(firstEvent.attributes!['pool.holders']).toHaveLength(10);
    expect(firstEvent.attributes!['pool.holders.count']).toBe(12);
    expect(firstEvent.attributes!['db.client.connection.max']).toBe(12);
    expect(firstEvent.attributes!['pool.pending']).toBe(1);
    expect(failed[1]!.attributes['pool.pending_at_request']).toBe(1);
  });

  it('a checkout that fails for another reason (server unreachable) has no pool.exhausted', async () => {
    const pool = newPool({ port: 1, connectionTimeoutMillis: 2000 });
    await tracing.inRequest('GET /down', () => pool.connect().then(() => undefined, () => undefined));
    const [failed] = tracing.spansNamed('pg-pool checkout');
    expect(failed!.status.code).toBe(2);
    expect(eventNames(failed!)).toEqual(['exception']);
  });

  it('a new connection that takes too long to open is a timeout (metric) but not an exhausted pool', async () => {
    // A loopback server that accepts and never answers: pg's connect waits for its handshake.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const pool = newPool({ port, connectionTimeoutMillis: 150 });
      const error = await tracing.inRequest('GET /slow-server', () => pool.connect().then(() => undefined, (failure: unknown) => failure));
      expect((error as Error).message).toBe('Connection terminated due to connection timeout');
    } finally {
      sockets.forEach((socket) => socket.destroy());
      await new Promise((resolve) => silent.close(resolve));
    }
    const [failed] = tracing.spansNamed('pg-pool checkout');
    expect(eventNames(failed!)).toEqual(['exception']);
    const timeouts = await tracing.metricPoints('db.client.connection.timeouts');
    expect(timeouts.find((point) => point.attributes['db.client.connection.pool.name'] === `127.0.0.1:${port}/postgres`)?.value).toBe(1);
  });

  it('checkouts that succeed carry no holder information', async () => {
    const pool = newPool();
    await tracing.inRequest('GET /ok', async () => (await pool.connect()).release());
    const [span] = tracing.spansNamed('pg-pool checkout');
    expect(eventNames(span!)).toEqual(['pool.acquired']);
    expect(span!.attributes['pool.pending_at_request']).toBeUndefined();
  });
});
