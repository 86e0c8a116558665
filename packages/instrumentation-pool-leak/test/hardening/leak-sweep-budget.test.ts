// A mass expiry is reported within a per-turn budget: the sweep yields to the event loop and
// carries on at the next turn, and no expired lease is dropped. The clock and the scheduler are
// the test's own, so the outcome does not depend on how busy the machine is.
import { describe, expect, it } from 'vitest';
import { LeakSweeper } from '../../src/core/leak-detector';
import { ManualScheduler } from '../support/manual-scheduler';

interface FakeLease {
  readonly id: number;
  readonly grantedAt: number;
}

/** Granted long before any `performance.now()` the sweep reads: every lease is expired. */
const LONG_AGO = -1e9;

/** A sweeper whose every report takes 1 ms of its (fake) budget clock. */
function sweeperFor(budgetMs: number, scheduler: ManualScheduler) {
  let now = 0;
  const reported: number[] = [];
  const sweeper = new LeakSweeper<FakeLease>(
    100,
    (lease) => {
      reported.push(lease.id);
      now += 1;
    },
    { budgetMs, clock: () => now, scheduler },
  );
  return { sweeper, reported };
}

describe('LeakSweeper budget', () => {
  it('stops a sweep when its budget is spent and reports the rest on later turns, oldest first', () => {
    const scheduler = new ManualScheduler();
    const { sweeper, reported } = sweeperFor(5, scheduler);
    for (let id = 0; id < 100; id++) sweeper.watch({ id, grantedAt: LONG_AGO });
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
    // Nothing left to watch: the timer stopped itself.
    expect(scheduler.periodicCount).toBe(0);
  });

  it('a lease checked in while a sweep is spread over turns is not reported', () => {
    const scheduler = new ManualScheduler();
    const { sweeper, reported } = sweeperFor(2, scheduler);
    const leases = Array.from({ length: 20 }, (_, id) => ({ id, grantedAt: LONG_AGO }));
    for (const lease of leases) sweeper.watch(lease);
    sweeper.sweep();
    expect(reported.length).toBe(2);
    sweeper.unwatch(leases[19]!);
    while (scheduler.pendingTurns > 0) scheduler.runTurn();
    expect(reported).toEqual(Array.from({ length: 19 }, (_, id) => id));
    sweeper.stop();
  });

  it('stop() cancels a sweep spread over turns', () => {
    const scheduler = new ManualScheduler();
    const { sweeper, reported } = sweeperFor(2, scheduler);
    for (let id = 0; id < 10; id++) sweeper.watch({ id, grantedAt: LONG_AGO });
    sweeper.sweep();
    sweeper.stop();
    expect(scheduler.pendingTurns).toBe(0);
    expect(reported).toEqual([0, 1]);
  });

  it('the threshold can change while leases are watched', () => {
    const reported: number[] = [];
    const sweeper = new LeakSweeper<FakeLease>(1_000, (lease) => reported.push(lease.id), { scheduler: new ManualScheduler() });
    for (let id = 0; id < 3; id++) sweeper.watch({ id, grantedAt: id * 10 });
    expect(sweeper.sweep(100)).toBe(0);
    sweeper.setThreshold(85);
    expect(sweeper.sweep(100)).toBe(2);
    expect(reported).toEqual([0, 1]);
    sweeper.stop();
  });
});
