import { LeaseQueue, type Queued } from '../../src/core/lease-queue';

/** A held lease as the leak sweep sees it, in a queue of the test's own. */
export interface FakeLease extends Queued {
  readonly id: number;
  readonly grantedAt: number;
  leakSuspected: boolean;
}

export function fakeLease(id: number, grantedAt: number): FakeLease {
  return { id, grantedAt, leakSuspected: false, queuePrev: undefined, queueNext: undefined, queuedIn: undefined };
}

/**
 * `count` fake leases granted at `grantedAt(id)`, appended in that order to one held queue;
 * `queues` is what a sweeper walks.
 */
export function heldQueueOf(count: number, grantedAt: (id: number) => number) {
  const queue = new LeaseQueue<FakeLease>();
  const leases = Array.from({ length: count }, (_, id) => fakeLease(id, grantedAt(id)));
  for (const lease of leases) queue.append(lease);
  return { queue, leases, queues: () => [queue] };
}

/** The lease core's side of a leak report: marks the lease reported, then records it. */
export function reportingInto(reported: number[], onReport: () => void = () => {}) {
  return (lease: FakeLease) => {
    lease.leakSuspected = true;
    reported.push(lease.id);
    onReport();
  };
}
