// Checkins in a GC finalizer or on a loop tick outside the owner's trace, on a real pg pool.
// The vitest config runs this file twice on Node 24: with AsyncContextFrame (the default) and
// with --no-async-context-frame (the async_hooks implementation Node 22 uses).
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { setImmediate as nextLoopTurn, setTimeout as sleep } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { executionAsyncId } from 'node:async_hooks';
import type { PoolClient } from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPg, postgresConfig } from '../support/pg';
import { eventNamed } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing({ leakThresholdMs: 0 });
const pg = loadPg();
const pool = new pg.Pool({ ...postgresConfig(), max: 4 });

// A "sweeper" registered at start-up, outside any request: what it runs has no trace context.
const handedOff: PoolClient[] = [];
const startupSweeper = setInterval(() => {
  for (const client of handedOff.splice(0)) client.release();
}, 5);
startupSweeper.unref();

// A registry created after the instrumentation was enabled: its cleanup runs under the marker.
const safetyNet = new FinalizationRegistry<PoolClient>((client) => client.release());

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

beforeEach(() => tracing.exporter.reset());
afterEach(() => expect(handedOff).toHaveLength(0));
afterAll(async () => {
  clearInterval(startupSweeper);
  await pool.end();
  tracing.instrumentation.disable();
});


function checkoutSpanOf(functionName: string): ReadableSpan {
  const spans = tracing.spansNamed('pg-pool checkout').filter((span) => span.attributes['code.function.name'] === functionName);
  expect(spans).toHaveLength(1);
  return spans[0]!;
}

function misplacedCheckinEvents(span: ReadableSpan): string[] {
  return span.events.map((event) => event.name).filter((name) => name.startsWith('pool.checkin.'));
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (condition()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

it('runs under the context implementation this project asked for', async () => {
  await null;
  // async_hooks gives promise continuations an id; AsyncContextFrame (Node 24 default) gives 0.
  const asyncHooksImplementation = process.execArgv.includes('--no-async-context-frame');
  expect(executionAsyncId() !== 0).toBe(asyncHooksImplementation);
});

describe('pool.checkin.finalizer', () => {
  it('a connection released by a FinalizationRegistry cleanup gets one event with the checkin stack', async () => {
    async function checkoutWithSafetyNet() {
      const client = await pool.connect();
      safetyNet.register({ owner: 'dropped request state' }, client);
    }
    await tracing.inRequest('GET /gc', checkoutWithSafetyNet);
    await until(() => {
      collectGarbage();
      return tracing.spansNamed('pg-pool checkout').length === 1;
    }, 'the finalizer to release the client');
    const span = checkoutSpanOf('checkoutWithSafetyNet');
    expect(misplacedCheckinEvents(span)).toEqual(['pool.checkin.finalizer']);
    const stack = String(eventNamed(span, 'pool.checkin.finalizer')?.attributes?.['pool.checkin.stacktrace']);
    expect(stack).toMatch(/checkin-events\.test\.ts/);
    expect(stack.split('\n').length).toBeLessThanOrEqual(30);
  });
});

describe('pool.checkin.loop_tick', () => {
  it('fires when a start-up interval (no context) releases a lease taken inside a trace', async () => {
    async function handToSweeper() {
      handedOff.push(await pool.connect());
    }
    await tracing.inRequest('GET /handoff', handToSweeper);
    await until(() => tracing.spansNamed('pg-pool checkout').length === 1, 'the sweeper to release');
    const span = checkoutSpanOf('handToSweeper');
    expect(misplacedCheckinEvents(span)).toEqual(['pool.checkin.loop_tick']);
    const event = eventNamed(span, 'pool.checkin.loop_tick');
    expect(event?.attributes?.['pool.checkin.async_resource_type']).toBe('Timeout');
    expect(String(event?.attributes?.['pool.checkin.stacktrace'])).toMatch(/checkin-events\.test\.ts/);
  });

  it('fires when another trace releases it (a shared queue drained by another request)', async () => {
    const queue: PoolClient[] = [];
    async function enqueueForLater() {
      queue.push(await pool.connect());
    }
    await tracing.inRequest('GET /enqueue', enqueueForLater);
    await tracing.inRequest('POST /drain', async () => {
      for (const client of queue.splice(0)) client.release();
    });
    expect(misplacedCheckinEvents(checkoutSpanOf('enqueueForLater'))).toEqual(['pool.checkin.loop_tick']);
  });

  it.each([
    ['after several awaits', async (client: PoolClient) => {
      await client.query('SELECT 1');
      await nextLoopTurn();
      await Promise.resolve();
      client.release();
    }],
    ['from setImmediate', (client: PoolClient) => new Promise<void>((resolve) => setImmediate(() => (client.release(), resolve())))],
    ['from setTimeout', (client: PoolClient) => new Promise<void>((resolve) => setTimeout(() => (client.release(), resolve()), 2))],
    ['from a client.query callback', (client: PoolClient) =>
      new Promise<void>((resolve) => client.query('SELECT 1', () => (client.release(), resolve())))],
  ])('does not fire for a release %s inside the owner trace', async (_how, releaseIt) => {
    async function ownFlow() {
      await releaseIt(await pool.connect());
    }
    await tracing.inRequest('GET /own', ownFlow);
    expect(misplacedCheckinEvents(checkoutSpanOf('ownFlow'))).toEqual([]);
  });

  it('does not fire for pool.query, whose release runs in pg internals', async () => {
    async function queryThroughPool() {
      // Reuse connections opened by other requests: their sockets carry those requests' context.
      await Promise.all([pool.query('SELECT 1'), pool.query('SELECT 2'), pool.query('SELECT 3')]);
    }
    await tracing.inRequest('GET /pool-query', queryThroughPool);
    const spans = tracing.spansNamed('pg-pool checkout');
    expect(spans).toHaveLength(3);
    expect(spans.flatMap(misplacedCheckinEvents)).toEqual([]);
  });

  it('never fires for a lease checked out with no active span', async () => {
    async function noTraceAtAll() {
      const client = await pool.connect();
      await nextLoopTurn();
      client.release();
    }
    async function noTraceThenOtherTrace() {
      const client = await pool.connect();
      await tracing.inRequest('POST /other', async () => client.release());
    }
    await noTraceAtAll();
    await noTraceThenOtherTrace();
    expect(misplacedCheckinEvents(checkoutSpanOf('noTraceAtAll'))).toEqual([]);
    expect(misplacedCheckinEvents(checkoutSpanOf('noTraceThenOtherTrace'))).toEqual([]);
  });
});
