import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_DB_CLIENT_CONNECTION_MAX,
  ATTR_POOL_HOLDERS,
  ATTR_POOL_HOLDERS_COUNT,
  ATTR_POOL_PENDING,
} from '../signals/semconv';
import type { CapturedStack } from '../call-site/stack';
import { describeLeaseState, type LeaseStateSnapshot } from './lease-state';
import type { PoolStats, TrackedPool } from './tracked-pool';

/** What naming a holder reads of a held lease. */
export interface Holder {
  heldMs(now: number): number;
  readonly stack: CapturedStack | undefined;
  activityAt(now: number): LeaseStateSnapshot;
}

/** At most this many holders are named on a `pool.exhausted` event. */
export const MAX_POOL_HOLDERS = 10;

/**
 * The holders of `pool`'s connections right now, longest-held first, at most
 * {@link MAX_POOL_HOLDERS}, frozen. The pool's held leases are kept in grant order, so this
 * reads at most that many of them and never the waiting ones; and a storm of failures within
 * one millisecond, with no grant, checkin or statement in between, names them once: W failing
 * checkouts cost O(W), however many wait.
 */
export function poolHolders(pool: TrackedPool<Holder>, now = performance.now()): readonly string[] {
  const millisecond = Math.floor(now);
  const named = pool.namedHolders;
  if (named !== undefined && named.version === pool.holdersVersion && named.millisecond === millisecond) return named.holders;
  const holders: string[] = [];
  for (const lease of pool.heldLeases) {
    if (holders.length >= MAX_POOL_HOLDERS) break;
    holders.push(describeHolder(lease, now));
  }
  const frozen = Object.freeze(holders);
  pool.namedHolders = { version: pool.holdersVersion, millisecond, holders: frozen };
  return frozen;
}

/** Attributes of the `pool.exhausted` event: the holders (see {@link poolHolders}) and the pool's counters. */
export function exhaustedPoolAttributes(pool: TrackedPool, holders: readonly string[]): Attributes {
  const attributes: Attributes = {
    [ATTR_POOL_HOLDERS]: holders as string[],
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
 * statements: `busy <N> ms`, `idle <N> ms`, `idle <N> ms in transaction` or `idle <N> ms in transaction (aborted)`.
 */
export function describeHolder(lease: Holder, now: number): string {
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
