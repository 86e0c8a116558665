// A pool's leases in their clock's order, linked through the leases (#22): what a Set gave the
// lease core (order, membership, size) with no table to rehash, and the cursor the sweeps start at.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LeaseQueue } from '../../src/core/lease-queue';
import { fakeLease, type FakeLease } from '../support/queued-leases';

describe('LeaseQueue', () => {
  it('behaves as an insertion-ordered set under any sequence of joins and leaves, between two queues', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(19), fc.boolean())), (steps) => {
        const leases = Array.from({ length: 20 }, (_, id) => fakeLease(id, 0));
        const queues = [new LeaseQueue<FakeLease>(), new LeaseQueue<FakeLease>()];
        const models: FakeLease[][] = [[], []];
        for (const [id, toSecond] of steps) {
          const lease = leases[id]!;
          const target = toSecond ? 1 : 0;
          const at = models.findIndex((model) => model.includes(lease));
          if (at >= 0) {
            // In a queue: it leaves; removing it from the other queue is refused.
            expect(queues[1 - at]!.remove(lease)).toBe(false);
            expect(queues[at]!.remove(lease)).toBe(true);
            models[at]!.splice(models[at]!.indexOf(lease), 1);
          } else {
            queues[target]!.append(lease);
            models[target]!.push(lease);
          }
          for (const index of [0, 1]) {
            expect([...queues[index]!]).toEqual(models[index]);
            expect(queues[index]!.size).toBe(models[index]!.length);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('the unswept cursor: the first item not passed, moved on when that item leaves, set again when an item joins after all were passed', () => {
    const queue = new LeaseQueue<FakeLease>();
    const [a, b, c, d] = [1, 2, 3, 4].map((id) => fakeLease(id, id));
    queue.append(a!);
    queue.append(b!);
    expect(queue.unswept).toBe(a);
    queue.unswept = queue.after(a!); // a sweep passed a
    queue.remove(b!); // the cursor's item leaves: the cursor moves on
    expect(queue.unswept).toBeUndefined();
    queue.append(c!); // all were passed: the newcomer is the first unswept
    expect(queue.unswept).toBe(c);
    queue.append(d!);
    expect(queue.unswept).toBe(c);
    queue.remove(a!); // an item already passed leaves: the cursor stays
    expect(queue.unswept).toBe(c);
    expect([...queue]).toEqual([c, d]);
  });

  it('a lease that leaves takes no neighbour with it and keeps no reference to the queue', () => {
    const queue = new LeaseQueue<FakeLease>();
    const leases = Array.from({ length: 3 }, (_, id) => fakeLease(id, id));
    for (const lease of leases) queue.append(lease);
    queue.remove(leases[1]!);
    expect(leases[1]).toMatchObject({ queuedIn: undefined, queuePrev: undefined, queueNext: undefined });
    expect(queue.after(leases[0]!)).toBe(leases[2]);
  });
});
