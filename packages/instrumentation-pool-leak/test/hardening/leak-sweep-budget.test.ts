// A mass expiry is reported within a per-turn budget: the sweep yields to the event loop and
// carries on at the next turn, and no expired lease is dropped.
import { describe, expect, it } from 'vitest';
import { LeakSweeper } from '../../src/leak-detector';

interface FakeLease {
  readonly id: number;
  readonly grantedAt: number;
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('LeakSweeper budget', () => {
  it('stops a sweep when its budget is spent and reports the rest on later turns, oldest first', async () => {
    // A clock that advances 1 ms per report stands for reports that take 1 ms each.
    let now = 0;
    const reported: number[] = [];
    const perTurn: number[] = [];
    const sweeper = new LeakSweeper<FakeLease>(
      100,
      (lease) => {
        reported.push(lease.id);
        now += 1;
      },
      { budgetMs: 5, clock: () => now },
    );
    for (let id = 0; id < 100; id++) sweeper.watch({ id, grantedAt: 0 });
    let before = 0;
    sweeper.sweep(1_000);
    perTurn.push(reported.length);
    for (let turn = 0; turn < 200 && reported.length < 100; turn++) {
      before = reported.length;
      await nextTurn();
      if (reported.length > before) perTurn.push(reported.length - before);
    }
    expect(reported).toEqual(Array.from({ length: 100 }, (_, id) => id));
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(6);
    expect(sweeper.size).toBe(0);
    sweeper.stop();
  });

  it('a lease checked in while a sweep is spread over turns is not reported', async () => {
    let now = 0;
    const reported: number[] = [];
    const sweeper = new LeakSweeper<FakeLease>(
      100,
      (lease) => {
        reported.push(lease.id);
        now += 1;
      },
      { budgetMs: 2, clock: () => now },
    );
    const leases = Array.from({ length: 20 }, (_, id) => ({ id, grantedAt: 0 }));
    for (const lease of leases) sweeper.watch(lease);
    sweeper.sweep(1_000);
    expect(reported.length).toBeLessThan(20);
    sweeper.unwatch(leases[19]!);
    for (let turn = 0; turn < 50; turn++) await nextTurn();
    expect(reported).toEqual(Array.from({ length: 19 }, (_, id) => id));
    sweeper.stop();
  });

  it('the threshold can change while leases are watched', () => {
    const reported: number[] = [];
    const sweeper = new LeakSweeper<FakeLease>(1_000, (lease) => reported.push(lease.id));
    for (let id = 0; id < 3; id++) sweeper.watch({ id, grantedAt: id * 10 });
    expect(sweeper.sweep(100)).toBe(0);
    sweeper.setThreshold(85);
    expect(sweeper.sweep(100)).toBe(2);
    expect(reported).toEqual([0, 1]);
    sweeper.stop();
  });
});
