import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_DB_CLIENT_CONNECTION_MAX,
  ATTR_POOL_HOLDERS,
  ATTR_POOL_HOLDERS_COUNT,
  ATTR_POOL_PENDING,
} from '../signals/semconv';
import type { CapturedStack } from '../call-site/stack';
import type { HolderFacts } from '../signals/exhaustion-cause';
import { describeLeaseState, type LeaseStateSnapshot } from './lease-state';
import type { PoolStats, TrackedPool } from './tracked-pool';
import type { Queued } from './lease-queue';

/** What naming a holder reads of a held lease. */
export interface Holder extends Queued {
  heldMs(now: number): number;
  readonly stack: CapturedStack | undefined;
  activityAt(now: number): LeaseStateSnapshot;
}

/** At most this many holders are named on a `pool.exhausted` event. */
export const MAX_POOL_HOLDERS = 10;

/** The holders of a pool at one moment: named for the span, and the facts the verdict reads. */
export interface NamedHolders {
  /** At most {@link MAX_POOL_HOLDERS}, longest-held first, frozen. */
  readonly holders: readonly string[];
  /** Every holder, longest-held first. */
  readonly facts: readonly HolderFacts[];
}

/**
 * The holders of `pool`'s connections right now, longest-held first: the first
 * {@link MAX_POOL_HOLDERS} named, every one read once for the verdict. The pool's held leases are
 * kept in grant order, so this never reads the waiting ones; the caller keeps the result for
 * as long as it is true (see `starvation.ts`), so W failing checkouts cost O(W).
 */
export function nameHolders(pool: TrackedPool<Holder>, now = performance.now()): NamedHolders {
  const holders: string[] = [];
  const facts: HolderFacts[] = [];
  for (const lease of pool.heldLeases) {
    const heldMs = lease.heldMs(now);
    const activity = lease.activityAt(now);
    facts.push({ heldMs, busy: activity.state === 'busy', stateMs: activity.stateMs });
    if (holders.length < MAX_POOL_HOLDERS) holders.push(holderText(lease.stack, heldMs, activity));
  }
  return { holders: Object.freeze(holders), facts };
}

/** Attributes of the `pool.exhausted` event: the holders (see {@link nameHolders}) and the pool's counters. */
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
function holderText(stack: CapturedStack | undefined, heldMs: number, activity: LeaseStateSnapshot): string {
  const callPath =
    stack === undefined ? '<unknown call site: stack capture off>' : (stack.callPath ?? '<no application frame in the captured stack>');
  return `${callPath} held ${Math.round(heldMs)} ms — ${describeLeaseState(activity)}`;
}

/** The pool's counters, or undefined when its probe throws: the holders matter more. */
function readStatsOf(pool: TrackedPool): PoolStats | undefined {
  try {
    return pool.readStats();
  } catch {
    return undefined;
  }
}
