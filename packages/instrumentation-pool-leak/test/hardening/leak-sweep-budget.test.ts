// A mass expiry is reported within a per-turn budget: the sweep yields to the event loop and
// carries on at the next turn, and no expired lease is dropped. The clock and the scheduler are
// the test's own, so the outcome does not depend on how busy the machine is.
import { describe, expect, it } from 'vitest';
import { LeakSweeper } from '../../src/core/leak-detector';
import { ManualScheduler } from '../support/manual-scheduler';
import { heldQueueOf, reportingInto, type FakeLease } from '../support/queued-leases';

/** Granted long before any `performance.now()` the sweep reads: every lease is expired. */
const LONG_AGO = -1e9;

/** A sweeper over `count` expired leases whose every report takes 1 ms of its (fake) budget clock. */
function sweeperFor(budgetMs: number, scheduler: ManualScheduler, count: number) {
  let now = 0;
  const reported: number[] = [];
  const held = heldQueueOf(count, () => LONG_AGO);
  const sweeper = new LeakSweeper<FakeLease>(100, held.queues, reportingInto(reported, () => (now += 1)), { budgetMs, clock: () => now, scheduler });
  sweeper.watch();
  return { sweeper, reported, ...held };
}

describe('LeakSweeper budget', () => {
  it('stops a sweep when its budget is spent and reports the rest on later turns, oldest first', () => {
    const scheduler = new ManualScheduler();
    const { sweeper, reported } = sweeperFor(5, scheduler, 100);
    const perTurn = [sweeper.sweep()];
    for (let turn = 0; turn < 200 && scheduler.pendingTurns > 0; turn++) {
      const before = reported.length;
      scheduler.runTurn();
      // The interval fires between turns too: a sweep spread over turns must not run twice.
      scheduler.tick();
      perTurn.push(reported.length - before);
    }
    expect(reported).toEqual(Array.from({ length: 100 }, (_, id) => id));
    expect(perTurn.every((count) => count <= 5)).toBe(true);
    // 20 turns of 5, then one that finds nothing left (the 100th report spent the budget too).
    expect(perTurn).toEqual([...Array<number>(20).fill(5), 0]);
    expect(sweeper.size).toBe(0);
    // Nothing left to pass: the timer stopped itself.
    expect(scheduler.periodicCount).toBe(0);
  });

  it('a lease checked in while a sweep is spread over turns is not reported', () => {
    const scheduler = new ManualScheduler();
    const { sweeper, reported, queue, leases } = sweeperFor(2, scheduler, 20);
    sweeper.sweep();
    expect(reported.length).toBe(2);
    queue.remove(leases[19]!);
    while (scheduler.pendingTurns > 0) scheduler.runTurn();
    expect(reported).toEqual(Array.from({ length: 19 }, (_, id) => id));
    sweeper.stop();
  });

  it('stop() cancels a sweep spread over turns', () => {
    const scheduler = new ManualScheduler();
    const { sweeper, reported } = sweeperFor(2, scheduler, 10);
    sweeper.sweep();
    sweeper.stop();
    expect(scheduler.pendingTurns).toBe(0);
    expect(reported).toEqual([0, 1]);
  });

  it('the threshold can change while leases are watched', () => {
    const reported: number[] = [];
    const held = heldQueueOf(3, (id) => id * 10);
    const sweeper = new LeakSweeper<FakeLease>(1_000, held.queues, reportingInto(reported), { scheduler: new ManualScheduler() });
    sweeper.watch();
    expect(sweeper.sweep(100)).toBe(0);
    sweeper.setThreshold(85);
    expect(sweeper.sweep(100)).toBe(2);
    expect(reported).toEqual([0, 1]);
    sweeper.stop();
  });

});
