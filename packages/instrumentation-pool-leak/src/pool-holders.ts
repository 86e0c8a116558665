import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_DB_CLIENT_CONNECTION_MAX,
  ATTR_POOL_HOLDERS,
  ATTR_POOL_HOLDERS_COUNT,
  ATTR_POOL_PENDING,
} from './semconv';
import type { Lease } from './lease';
import type { TrackedPool } from './tracked-pool';

/** At most this many holders are named on a `pool.exhausted` event. */
export const MAX_POOL_HOLDERS = 10;

/**
 * Attributes of the `pool.exhausted` event: who holds the pool's connections right now,
 * longest-held first. Built only when a checkout failed, so the walk over the pool's open leases
 * never runs on the success path.
 */
export function exhaustedPoolAttributes(pool: TrackedPool, now = performance.now()): Attributes {
  const holders: Lease[] = [];
  for (const lease of pool.openLeases) if (lease.isHeld) holders.push(lease);
  // openLeases is in request order; grants can come out of that order (priorities, timeouts).
  holders.sort((a, b) => a.grantedAt - b.grantedAt);
  const attributes: Attributes = {
    [ATTR_POOL_HOLDERS]: holders.slice(0, MAX_POOL_HOLDERS).map((lease) => describeHolder(lease, now)),
    [ATTR_POOL_HOLDERS_COUNT]: holders.length,
  };
  const stats = pool.readStats();
  const max = stats?.max ?? pool.description.maxConnections;
  if (max !== undefined && Number.isFinite(max)) attributes[ATTR_DB_CLIENT_CONNECTION_MAX] = max;
  if (stats !== undefined) attributes[ATTR_POOL_PENDING] = stats.pending;
  return attributes;
}

/**
 * `"<call path> held <N> ms"`, from the stack captured at checkout: two callers of one helper
 * are told apart by the frames after the helper's.
 */
export function describeHolder(lease: Lease, now: number): string {
  const heldMs = Math.round(lease.heldMs(now));
  const stack = lease.stack;
  if (stack === undefined) return `<unknown call site: stack capture off> held ${heldMs} ms`;
  return `${stack.callPath ?? '<no application frame in the captured stack>'} held ${heldMs} ms`;
}
