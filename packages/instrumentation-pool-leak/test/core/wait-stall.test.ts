// The stall sweep on its own (a clock and a scheduler the test drives), then on a real
// generic-pool: a live threshold change, and a waiter that ends at provider shutdown.
import { describe, expect, it } from 'vitest';
import type * as GenericPoolModule from 'generic-pool';
import { LeaseQueue, type Queued } from '../../src/core/lease-queue';
import { WaitStallSweeper } from '../../src/core/wait-stall';
import { genericPoolsOf, requireLibrary } from '../support/in-memory-resources';
import { ManualScheduler } from '../support/manual-scheduler';
import { until } from '../support/mysql2';
import { setupTracing } from '../support/tracing';

interface FakeWaiter extends Queued {
  readonly id: number;
  readonly requestedAt: number;
  readonly pool: string;
}

/** Waiters in one queue per pool, in request order, as the pools keep them. */
function waitingQueues() {
  const queues = new Map<string, LeaseQueue<FakeWaiter>>();
  const waiters: FakeWaiter[] = [];
  return {
    queues: () => queues.values(),
    waiters,
    request(id: number, requestedAt: number, pool: string): FakeWaiter {
      const waiter: FakeWaiter = { id, requestedAt, pool, queuePrev: undefined, queueNext: undefined, queuedIn: undefined };
      let queue = queues.get(pool);
      if (queue === undefined) queues.set(pool, (queue = new LeaseQueue<FakeWaiter>()));
      queue.append(waiter);
      waiters.push(waiter);
      return waiter;
    },
    grant(waiter: FakeWaiter): void {
      queues.get(waiter.pool)!.remove(waiter);
    },
  };
}

function sweeperCollecting(thresholdMs: number, options: { clock?: () => number; budgetMs?: number; scheduler?: ManualScheduler } = {}) {
  const reported: [number, number, string][] = [];
  const gathered: string[] = [];
  const waiting = waitingQueues();
  const sweeper = new WaitStallSweeper<string, FakeWaiter, string>(
    thresholdMs,
    waiting.queues,
    (pool) => {
      gathered.push(pool);
      return `holders of ${pool}`;
    },
    (lease, waitedMs, holders) => reported.push([lease.id, waitedMs, holders]),
    { scheduler: options.scheduler ?? new ManualScheduler(), ...options },
  );
  return { sweeper, reported, gathered, waiting };
}

describe('WaitStallSweeper', () => {
  it('reports each waiter past the threshold once, oldest first in each pool, and gathers each pool once per sweep', () => {
    const { sweeper, reported, gathered, waiting } = sweeperCollecting(100);
    for (let id = 0; id < 6; id++) waiting.request(id, id * 10, id % 2 === 0 ? 'a' : 'b');
    sweeper.watch();
    expect(sweeper.sweep(145)).toBe(5); // waited 145 … 105 ms; the last one 95 ms
    expect(reported.map(([id]) => id)).toEqual([0, 2, 4, 1, 3]);
    expect(reported[0]).toEqual([0, 145, 'holders of a']);
    expect(gathered).toEqual(['a', 'b']);
    expect(sweeper.sweep(145)).toBe(0);
    expect(sweeper.sweep(1000)).toBe(1);
    expect(reported.map(([id]) => id)).toEqual([0, 2, 4, 1, 3, 5]);
    expect(sweeper.size).toBe(0);
  });

  it('a waiter granted before the threshold is never reported; with nothing left to pass the timer stops', () => {
    const scheduler = new ManualScheduler();
    const { sweeper, reported, waiting } = sweeperCollecting(100, { scheduler });
    const waiter = waiting.request(1, 0, 'a');
    sweeper.watch();
    expect(scheduler.periodicCount).toBe(1);
    waiting.grant(waiter);
    scheduler.tick();
    expect(reported).toEqual([]);
    expect(scheduler.periodicCount).toBe(0);
  });

  it('a queue of 20 000 stalled waiters is reported within a budget per turn, the rest on the next turns', () => {
    let now = 0;
    const scheduler = new ManualScheduler();
    // Each report moves the clock 1 ms: a budget of 5 ms allows 5 reports per turn.
    const { sweeper, reported, gathered, waiting } = sweeperCollecting(100, { clock: () => now, budgetMs: 5, scheduler });
    for (let id = 0; id < 20_000; id++) waiting.request(id, 0, 'a');
    sweeper.watch();
    now = 200;
    const onStall = reported.push.bind(reported);
    reported.push = (...items) => {
      now++;
      return onStall(...items);
    };
    expect(sweeper.sweep(200)).toBe(5);
    expect(scheduler.pendingTurns).toBe(1);
    let turns = 1;
    while (scheduler.runTurn() > 0) turns++;
    expect(reported).toHaveLength(20_000);
    expect(reported.map(([id]) => id)).toEqual(waiting.waiters.map((waiter) => waiter.id));
    // 4 000 turns of 5 reports, and the turn that finds the queue empty.
    expect(turns).toBe(4_001);
    // Once per pool per turn of the sweep, not once per waiter.
    expect(gathered).toHaveLength(4_000);
  });
});

describe('on a real generic-pool', () => {
  const tracing = setupTracing({ leakThresholdMs: 0, waitThresholdMs: 0 });
  const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
  const { newPool } = genericPoolsOf(genericPool);
  const stalls = () => tracing.spansNamed('generic-pool wait.stalled');

  it('threshold 0 reports nothing; a threshold set later with setConfig applies to the checkout already waiting; the waiter ended at shutdown carries its wait, the holders and the verdict', async () => {
    const pool = newPool({ max: 1 });
    async function leakResource() {
      await pool.acquire();
    }
    await tracing.inRequest('POST /leak', leakResource);
    let settled = false;
    async function waitForResource() {
      await pool.acquire().finally(() => (settled = true));
    }
    void tracing.inRequest('GET /wait', waitForResource).catch(() => {});
    await until('the checkout queued', () => pool.pending === 1);
    tracing.instrumentation.setConfig({ leakThresholdMs: 0, waitThresholdMs: 0 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stalls()).toEqual([]);

    tracing.instrumentation.setConfig({ leakThresholdMs: 0, waitThresholdMs: 20 });
    await until('the wait.stalled span', () => stalls().length > 0);
    expect(stalls()).toHaveLength(1);
    expect(stalls()[0]!.attributes['pool.exhaustion.cause']).toBe('leaked_connections');
    expect(settled).toBe(false);

    const exported = await tracing.shutdownKeepingExported();
    const waiter = exported.find((span) => span.name === 'generic-pool checkout' && span.attributes['code.function.name'] === 'waitForResource')!;
    expect(waiter.status.code).toBe(2);
    expect(waiter.attributes['pool.wait_ms']).toBeGreaterThanOrEqual(20);
    expect(waiter.attributes['pool.holders']).toEqual([expect.stringMatching(/^leakResource .* held \d+ ms — idle \d+ ms$/)]);
    expect(waiter.attributes['pool.exhaustion.cause']).toBe('leaked_connections');
    expect(waiter.events.map((event) => event.name)).toEqual(['pool.wait.stalled']);
    // One report per waiting checkout, shutdown included.
    expect(exported.filter((span) => span.name === 'generic-pool wait.stalled')).toEqual([]);
    tracing.instrumentation.disable();
  });
});
