// pool.use.foreign_context on a real pg pool: a client taken in one request and used by another.
import { context, ROOT_CONTEXT, trace, type Span } from '@opentelemetry/api';
import type { PoolClient } from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadPg, postgresConfig } from '../support/pg';
import { eventNamed, eventNames } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing({ leakThresholdMs: 0 });
const pg = loadPg();
const pool = new pg.Pool({ ...postgresConfig(), max: 4 });
const FOREIGN = 'pool.use.foreign_context';

beforeEach(() => tracing.exporter.reset());
afterAll(async () => {
  await pool.end();
  tracing.instrumentation.disable();
});

/** Runs `work` in a new root span (its own trace), as an unrelated request would. */
function inRootSpan<T>(name: string, work: (span: Span) => Promise<T>): Promise<T> {
  return context.with(ROOT_CONTEXT, () =>
    tracing.tracer.startActiveSpan(name, async (span) => {
      try {
        return await work(span);
      } finally {
        span.end();
      }
    }),
  );
}

async function foreignUseCount(functionName: string): Promise<number> {
  const points = await tracing.metricPoints(FOREIGN);
  return points
    .filter((point) => point.attributes['code.function.name'] === functionName)
    .reduce((sum, point) => sum + Number(point.value), 0);
}

/** Module state shared between "requests": the bug this event exists to find. */
let currentTransaction: PoolClient | undefined;

describe('pool.use.foreign_context', () => {
  it('a statement from another trace: one event with its ids and stack, a link back, the counter', async () => {
    async function beginOrder() {
      currentTransaction = await pool.connect();
      await currentTransaction.query('SELECT 1');
    }
    async function addLineFromOtherRequest() {
      await currentTransaction!.query('SELECT 2');
      await currentTransaction!.query('SELECT 3');
    }
    let foreignSpan: Span | undefined;
    await inRootSpan('POST /orders', beginOrder);
    await inRootSpan('POST /orders/lines', async (span) => {
      foreignSpan = span;
      await addLineFromOtherRequest();
    });
    currentTransaction!.release();
    currentTransaction = undefined;

    const [checkout] = tracing.spansNamed('pg-pool checkout');
    expect(checkout!.attributes['code.function.name']).toBe('beginOrder');
    const events = checkout!.events.filter((event) => event.name === FOREIGN);
    expect(events).toHaveLength(1);
    const attributes = events[0]!.attributes!;
    expect(attributes['pool.use.trace_id']).toBe(foreignSpan!.spanContext().traceId);
    expect(attributes['pool.use.span_id']).toBe(foreignSpan!.spanContext().spanId);
    expect(attributes['pool.use.trace_id']).not.toBe(checkout!.spanContext().traceId);
    expect(String(attributes['pool.use.stacktrace'])).toMatch(/addLineFromOtherRequest .*foreign-context\.test\.ts:\d+/);

    const [foreign] = tracing.spansNamed('POST /orders/lines');
    expect(foreign!.links.map((link) => link.context.spanId)).toEqual([checkout!.spanContext().spanId]);
    expect(await foreignUseCount('beginOrder')).toBe(1);
  });

  it('each further foreign trace is reported again', async () => {
    async function takeShared() {
      currentTransaction = await pool.connect();
    }
    await inRootSpan('POST /a', takeShared);
    await inRootSpan('POST /b', () => currentTransaction!.query('SELECT 1'));
    await inRootSpan('POST /c', () => currentTransaction!.query('SELECT 1'));
    currentTransaction!.release();
    const [checkout] = tracing.spansNamed('pg-pool checkout');
    const traceIds = checkout!.events.filter((event) => event.name === FOREIGN).map((event) => event.attributes!['pool.use.trace_id']);
    expect(traceIds).toEqual([tracing.spansNamed('POST /b')[0]!.spanContext().traceId, tracing.spansNamed('POST /c')[0]!.spanContext().traceId]);
  });

  it('statements in the lease own trace never fire: child spans, callbacks, timers, pool.query', async () => {
    await inRootSpan('GET /own', async () => {
      const client = await pool.connect();
      await client.query('SELECT 1');
      await tracing.tracer.startActiveSpan('child', async (child) => {
        await client.query('SELECT 2');
        child.end();
      });
      await new Promise<void>((resolve, reject) => client.query('SELECT 3', (error) => (error ? reject(error) : resolve())));
      await new Promise<void>((resolve, reject) => {
        setTimeout(() => client.query('SELECT 4').then(() => resolve(), reject), 5);
      });
      await pool.query('SELECT 5');
      client.release();
    });
    for (const checkout of tracing.spansNamed('pg-pool checkout')) expect(eventNames(checkout)).not.toContain(FOREIGN);
    expect(tracing.spansNamed('pg-pool checkout')).toHaveLength(2);
  });

  it('a lease taken with no active span never fires, whatever trace uses it later', async () => {
    const client = await context.with(ROOT_CONTEXT, () => pool.connect());
    await inRootSpan('GET /later', () => client.query('SELECT 1'));
    client.release();
    const [checkout] = tracing.spansNamed('pg-pool checkout');
    expect(eventNames(checkout!)).toEqual(['pool.acquired']);
  });

  it('a statement with no active trace at all is not reported (nothing to name as the other side)', async () => {
    let client: PoolClient | undefined;
    await inRootSpan('GET /owner', async () => {
      client = await pool.connect();
    });
    await context.with(ROOT_CONTEXT, () => client!.query('SELECT 1'));
    client!.release();
    expect(eventNamed(tracing.spansNamed('pg-pool checkout')[0]!, FOREIGN)).toBeUndefined();
  });

  it('after the checkin, a statement on the same client in another trace belongs to the next lease only', async () => {
    let client: PoolClient | undefined;
    await inRootSpan('GET /first', async () => {
      client = await pool.connect();
      client.release();
    });
    await sleep(1);
    // Misuse after release: no lease holds the client, so there is no span to put an event on.
    await inRootSpan('GET /second', () => client!.query('SELECT 1'));
    const checkouts = tracing.spansNamed('pg-pool checkout');
    expect(checkouts).toHaveLength(1);
    expect(eventNames(checkouts[0]!)).toEqual(['pool.acquired']);
    expect(trace.getActiveSpan()).toBeUndefined();
  });
});
