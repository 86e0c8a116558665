import { describe, expect, it } from 'vitest';
import { exhaustionCause, type HolderFacts, type StarvationFacts } from '../../src/signals/exhaustion-cause';

const idle = (heldMs: number, stateMs = heldMs): HolderFacts => ({ heldMs, busy: false, stateMs });
const busy = (heldMs: number, stateMs = heldMs): HolderFacts => ({ heldMs, busy: true, stateMs });

function facts(holders: HolderFacts[], overrides: Partial<StarvationFacts> = {}): StarvationFacts {
  return { holders, waitedMs: 1000, checkinsDuringWait: false, waiting: 1, max: holders.length, ...overrides };
}

describe('exhaustionCause', () => {
  it('most holders idle and held through the whole wait: leaked_connections (idle in a transaction counts as idle)', () => {
    expect(exhaustionCause(facts([idle(5000), idle(3000)]))).toBe('leaked_connections');
    expect(exhaustionCause(facts([idle(5000), idle(3000), busy(10)]))).toBe('leaked_connections');
    // Held exactly as long as the wait: it held the connection through the wait.
    expect(exhaustionCause(facts([idle(1000), idle(1000)]))).toBe('leaked_connections');
    // An immediate rejection (queue full) waited 0 ms: any idle holder held through it.
    expect(exhaustionCause(facts([idle(1), idle(2)], { waitedMs: 0 }))).toBe('leaked_connections');
  });

  it('most holders in a statement that ran through the whole wait: slow_queries', () => {
    expect(exhaustionCause(facts([busy(5000, 4000), busy(3000, 2000)]))).toBe('slow_queries');
    expect(exhaustionCause(facts([busy(5000, 4000), busy(3000, 2000), idle(10)]))).toBe('slow_queries');
  });

  it('holders busy in statements started during the wait are not slow queries', () => {
    expect(exhaustionCause(facts([busy(5000, 20), busy(3000, 20)]))).toBe('mixed');
  });

  it('most holders granted during the wait, a checkin during it, demand above max: undersized_pool', () => {
    const turnedOver = [busy(20, 15), busy(40, 30)];
    expect(exhaustionCause(facts(turnedOver, { checkinsDuringWait: true, waiting: 18, max: 2 }))).toBe('undersized_pool');
    // max unknown: someone waits.
    expect(exhaustionCause(facts(turnedOver, { checkinsDuringWait: true, waiting: 1, max: undefined }))).toBe('undersized_pool');
  });

  it('turnover without a checkin, or with a pool under its max, is mixed', () => {
    const turnedOver = [idle(20), idle(40)];
    expect(exhaustionCause(facts(turnedOver, { checkinsDuringWait: false, waiting: 5, max: 2 }))).toBe('mixed');
    expect(exhaustionCause(facts(turnedOver, { checkinsDuringWait: true, waiting: 1, max: 10 }))).toBe('mixed');
  });

  it('no holder, or an even split: mixed', () => {
    expect(exhaustionCause(facts([], { max: 2 }))).toBe('mixed');
    expect(exhaustionCause(facts([idle(5000), busy(5000)]))).toBe('mixed');
    expect(exhaustionCause(facts([idle(5000), idle(20)], { checkinsDuringWait: true, waiting: 3, max: 2 }))).toBe('mixed');
  });
});
