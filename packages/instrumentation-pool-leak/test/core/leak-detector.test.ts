import { describe, expect, it } from 'vitest';
import { LeakSweeper, NO_LEAK_WATCH, sweepIntervalFor } from '../../src/core/leak-detector';
import { ManualScheduler } from '../support/manual-scheduler';
import { heldQueueOf, reportingInto, type FakeLease } from '../support/queued-leases';

function sweeperOver(thresholdMs: number, count: number, grantedAt: (id: number) => number, scheduler = new ManualScheduler()) {
  const reported: number[] = [];
  const held = heldQueueOf(count, grantedAt);
  const sweeper = new LeakSweeper<FakeLease>(thresholdMs, held.queues, reportingInto(reported), { scheduler });
  sweeper.watch();
  return { sweeper, reported, scheduler, ...held };
}

describe('LeakSweeper', () => {
  it('reports each expired lease once, oldest first, and keeps the young ones', () => {
    const { sweeper, reported } = sweeperOver(100, 5, (id) => id * 10);
    expect(sweeper.sweep(125)).toBe(3); // held 125, 115, 105 ms
    expect(reported).toEqual([0, 1, 2]);
    expect(sweeper.sweep(125)).toBe(0);
    expect(sweeper.sweep(1000)).toBe(2);
    expect(reported).toEqual([0, 1, 2, 3, 4]);
    expect(sweeper.size).toBe(0);
    sweeper.stop();
  });

  it('a lease checked in before the threshold is never reported', () => {
    const { sweeper, reported, queue, leases } = sweeperOver(100, 1, () => 0);
    queue.remove(leases[0]!);
    expect(sweeper.sweep(10_000)).toBe(0);
    expect(reported).toEqual([]);
  });

  it('with 10 000 young leases a sweep reports nothing and they all stay watched', () => {
    const { sweeper } = sweeperOver(30_000, 10_000, (id) => 1_000 + id);
    expect(sweeper.sweep(2_000)).toBe(0);
    expect(sweeper.size).toBe(10_000);
    expect(sweeper.sweep(31_000 + 50)).toBe(51);
    expect(sweeper.size).toBe(10_000 - 51);
    sweeper.stop();
  });

  it('walks every queue it is given, each from where it stopped, and stops its timer once every lease was passed', () => {
    const first = heldQueueOf(3, (id) => id * 10);
    const second = heldQueueOf(2, (id) => 5 + id * 10);
    const reported: number[] = [];
    const scheduler = new ManualScheduler();
    const sweeper = new LeakSweeper<FakeLease>(100, () => [first.queue, second.queue], reportingInto(reported), { scheduler });
    sweeper.watch();
    expect(scheduler.periodicCount).toBe(1);
    expect(sweeper.sweep(112)).toBe(3); // 0, 1 of the first queue (112, 102 ms), 0 of the second (107 ms)
    expect(scheduler.periodicCount).toBe(1);
    expect(sweeper.sweep(1_000)).toBe(2);
    expect(reported).toEqual([0, 1, 0, 2, 1]);
    expect(scheduler.periodicCount).toBe(0);
  });

  it('runs on an unref-ed timer that fires by itself', async () => {
    const reported: number[] = [];
    const held = heldQueueOf(1, () => performance.now());
    const sweeper = new LeakSweeper<FakeLease>(20, held.queues, reportingInto(reported));
    sweeper.watch();
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(reported).toEqual([0]);
    sweeper.stop();
  });

  it('sweep period is a quarter of the threshold, between 5 ms and 1 s', () => {
    expect(sweepIntervalFor(200)).toBe(50);
    expect(sweepIntervalFor(4)).toBe(5);
    expect(sweepIntervalFor(30_000)).toBe(1000);
  });

  it('the disabled watcher is one shared object that does nothing', () => {
    expect(() => NO_LEAK_WATCH.watch()).not.toThrow();
    expect(NO_LEAK_WATCH.settle).toBeTypeOf('function');
  });
});

describe('LeakSweeper.settle', () => {
  it('a sliced sweep that has not reached a lease: its checkin reports it, once, and the sweep skips it', () => {
    const scheduler = new ManualScheduler();
    let clock = 0;
    const reported: number[] = [];
    const held = heldQueueOf(10, () => 0);
    // Every report spends 1 ms of a 2 ms budget: two per turn.
    const sweeper = new LeakSweeper<FakeLease>(1, held.queues, reportingInto(reported, () => (clock += 1)), { budgetMs: 2, clock: () => clock, scheduler });
    sweeper.watch();
    sweeper.sweep(50);
    expect(reported).toEqual([0, 1]);
    // Checked in before the next turn, 50 ms after the grant: reported now, then gone from the queue.
    for (const lease of held.leases.slice(5)) {
      sweeper.settle(lease, 50);
      held.queue.remove(lease);
    }
    expect(reported).toEqual([0, 1, 5, 6, 7, 8, 9]);
    // A reported lease's own checkin reports nothing more; one under the threshold neither.
    sweeper.settle(held.leases[0]!, 50);
    while (scheduler.pendingTurns > 0) scheduler.runTurn();
    expect(reported.sort((a, b) => a - b)).toEqual(held.leases.map((lease) => lease.id));
    const early = heldQueueOf(1, () => 100).leases[0]!;
    sweeper.settle(early, 100.5);
    expect(early.leakSuspected).toBe(false);
    expect(reported).toHaveLength(10);
    sweeper.stop();
  });
});
