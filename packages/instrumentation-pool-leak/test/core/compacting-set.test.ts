// A mass release gives the lease sets' tables back (#22): the set is re-created once it falls to
// an eighth of its peak, keeping its order; small sets are never re-created.
import { describe, expect, it } from 'vitest';
import { COMPACT_AFTER_PEAK, CompactingSet } from '../../src/core/compacting-set';
import { LeakSweeper } from '../../src/core/leak-detector';
import { ManualScheduler } from '../support/manual-scheduler';

describe('CompactingSet', () => {
  it('re-creates its table after a FIFO mass release and keeps insertion order', () => {
    const set = new CompactingSet<number>();
    const count = 100_000;
    for (let value = 0; value < count; value++) set.add(value);
    for (let value = 0; value < count - 10; value++) set.delete(value);
    expect(set.compactions).toBeGreaterThanOrEqual(1);
    expect([...set]).toEqual(Array.from({ length: 10 }, (_, index) => count - 10 + index));
    set.add(-1);
    expect([...set].at(-1)).toBe(-1);
    expect(set.has(count - 1)).toBe(true);
    expect(set.delete(12345)).toBe(false);
  });

  it('re-creates its table after a LIFO mass release too', () => {
    const set = new CompactingSet<number>();
    for (let value = 0; value < 50_000; value++) set.add(value);
    for (let value = 50_000 - 1; value >= 0; value--) set.delete(value);
    expect(set.compactions).toBeGreaterThanOrEqual(1);
    expect(set.size).toBe(0);
  });

  it('never re-creates a set that stayed small', () => {
    const set = new CompactingSet<number>();
    for (let round = 0; round < 1000; round++) {
      for (let value = 0; value < COMPACT_AFTER_PEAK - 1; value += 97) set.add(value);
      for (let value = 0; value < COMPACT_AFTER_PEAK - 1; value += 97) set.delete(value);
    }
    expect(set.compactions).toBe(0);
  });
});

describe('LeakSweeper.settle', () => {
  interface FakeLease {
    readonly id: number;
    readonly grantedAt: number;
  }

  it('a sliced sweep that has not reached a lease: its checkin reports it, once, and the sweep skips it', () => {
    const scheduler = new ManualScheduler();
    let clock = 0;
    const reported: number[] = [];
    // Every report spends 1 ms of a 2 ms budget: two per turn.
    const sweeper = new LeakSweeper<FakeLease>(
      1,
      (lease) => {
        reported.push(lease.id);
        clock += 1;
      },
      { budgetMs: 2, clock: () => clock, scheduler },
    );
    const leases = Array.from({ length: 10 }, (_, id) => ({ id, grantedAt: 0 }));
    for (const lease of leases) sweeper.watch(lease);
    sweeper.sweep(50);
    expect(reported).toEqual([0, 1]);
    // Checked in before the next turn, 50 ms after the grant: reported now.
    for (const lease of leases.slice(5)) sweeper.settle(lease, 50);
    expect(reported).toEqual([0, 1, 5, 6, 7, 8, 9]);
    // A reported lease's own checkin reports nothing more; one under the threshold neither.
    sweeper.settle(leases[0]!, 50);
    while (scheduler.pendingTurns > 0) scheduler.runTurn();
    expect(reported.sort((a, b) => a - b)).toEqual(leases.map((lease) => lease.id));
    const early = { id: 99, grantedAt: 100 };
    sweeper.watch(early);
    sweeper.settle(early, 100.5);
    expect(reported).not.toContain(99);
    sweeper.stop();
  });
});
