import { describe, expect, it } from 'vitest';
import { LeakSweeper, NO_LEAK_WATCH, sweepIntervalFor } from '../../src/core/leak-detector';

interface FakeLease {
  readonly id: number;
  readonly grantedAt: number;
}

function sweeperCollecting(thresholdMs: number) {
  const reported: number[] = [];
  const sweeper = new LeakSweeper<FakeLease>(thresholdMs, (lease) => reported.push(lease.id));
  return { sweeper, reported };
}

describe('LeakSweeper', () => {
  it('reports each expired lease once, oldest first, and keeps the young ones', () => {
    const { sweeper, reported } = sweeperCollecting(100);
    for (let id = 0; id < 5; id++) sweeper.watch({ id, grantedAt: id * 10 });
    expect(sweeper.sweep(125)).toBe(3); // held 125, 115, 105 ms
    expect(reported).toEqual([0, 1, 2]);
    expect(sweeper.sweep(125)).toBe(0);
    expect(sweeper.sweep(1000)).toBe(2);
    expect(reported).toEqual([0, 1, 2, 3, 4]);
    expect(sweeper.size).toBe(0);
    sweeper.stop();
  });

  it('a lease checked in before the threshold is never reported', () => {
    const { sweeper, reported } = sweeperCollecting(100);
    const lease = { id: 7, grantedAt: 0 };
    sweeper.watch(lease);
    sweeper.unwatch(lease);
    expect(sweeper.sweep(10_000)).toBe(0);
    expect(reported).toEqual([]);
  });

  it('with 10 000 young leases a sweep reports nothing and they all stay watched', () => {
    const { sweeper } = sweeperCollecting(30_000);
    for (let id = 0; id < 10_000; id++) sweeper.watch({ id, grantedAt: 1_000 + id });
    expect(sweeper.sweep(2_000)).toBe(0);
    expect(sweeper.size).toBe(10_000);
    expect(sweeper.sweep(31_000 + 50)).toBe(51);
    expect(sweeper.size).toBe(10_000 - 51);
    sweeper.stop();
  });

  it('runs on an unref-ed timer that fires by itself', async () => {
    const { sweeper, reported } = sweeperCollecting(20);
    sweeper.watch({ id: 1, grantedAt: performance.now() });
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(reported).toEqual([1]);
    sweeper.stop();
  });

  it('sweep period is a quarter of the threshold, between 5 ms and 1 s', () => {
    expect(sweepIntervalFor(200)).toBe(50);
    expect(sweepIntervalFor(4)).toBe(5);
    expect(sweepIntervalFor(30_000)).toBe(1000);
  });

  it('the disabled watcher is one shared object that does nothing', () => {
    expect(() => NO_LEAK_WATCH.watch({ grantedAt: 0 })).not.toThrow();
    expect(NO_LEAK_WATCH.unwatch).toBeTypeOf('function');
  });
});
