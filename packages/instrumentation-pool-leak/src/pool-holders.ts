import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_DB_CLIENT_CONNECTION_MAX,
  ATTR_POOL_HOLDERS,
  ATTR_POOL_HOLDERS_COUNT,
  ATTR_POOL_PENDING,
} from './semconv';
import type { Lease } from './lease';
import { describeLeaseState } from './lease-state';
import type { PoolStats, TrackedPool } from './tracked-pool';

/** At most this many holders are named on a `pool.exhausted` event. */
export const MAX_POOL_HOLDERS = 10;

/**
 * Attributes of the `pool.exhausted` event: who holds the pool's connections right now,
 * longest-held first. The pool's held leases are kept in grant order, so this reads at most
 * {@link MAX_POOL_HOLDERS} of them and never the waiting ones: a storm of W failing checkouts
 * costs O(W), however many wait.
 */
export function exhaustedPoolAttributes(pool: TrackedPool, now = performance.now()): Attributes {
  const holders: string[] = [];
  for (const lease of pool.heldLeases) {
    if (holders.length >= MAX_POOL_HOLDERS) break;
    holders.push(describeHolder(lease, now));
  }
  const attributes: Attributes = {
    [ATTR_POOL_HOLDERS]: holders,
    [ATTR_POOL_HOLDERS_COUNT]: pool.heldLeases.size,
  };
  const stats = readStatsOf(pool);
  const max = stats?.max ?? pool.description.maxConnections;
  if (max !== undefined && Number.isFinite(max)) attributes[ATTR_DB_CLIENT_CONNECTION_MAX] = max;
  if (stats !== undefined) attributes[ATTR_POOL_PENDING] = stats.pending;
  return attributes;
}

/**
 * `"<call path> held <N> ms — <state>[, last <summary>]"`, from the stack captured at checkout
 * (two callers of one helper are told apart by the frames after the helper's) and the lease's
 * statements: `busy <N> ms`, `idle <N> ms` or `idle <N> ms in transaction`.
 */
export function describeHolder(lease: Lease, now: number): string {
  const heldMs = Math.round(lease.heldMs(now));
  const stack = lease.stack;
  const callPath =
    stack === undefined ? '<unknown call site: stack capture off>' : (stack.callPath ?? '<no application frame in the captured stack>');
  return `${callPath} held ${heldMs} ms — ${describeLeaseState(lease.activityAt(now))}`;
}

/** The pool's counters, or undefined when its probe throws: the holders matter more. */
function readStatsOf(pool: TrackedPool): PoolStats | undefined {
  try {
    return pool.readStats();
  } catch {
    return undefined;
  }
}
