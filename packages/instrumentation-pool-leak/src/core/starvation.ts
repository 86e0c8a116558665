import type { Attributes } from '@opentelemetry/api';
import { exhaustionCause, type ExhaustionCause, type HolderFacts } from '../signals/exhaustion-cause';
import { ATTR_DB_CLIENT_CONNECTION_MAX, ATTR_POOL_EXHAUSTION_CAUSE, ATTR_POOL_PENDING, ATTR_POOL_WAIT_MS } from '../signals/semconv';
import { exhaustedPoolAttributes, nameHolders, type Holder } from './pool-holders';
import type { TrackedPool } from './tracked-pool';

/**
 * A pool's holders at one moment, gathered once and judged for each starved checkout: the named
 * holders (`pool.holders`), the pool's counters, and the facts the verdict reads of every holder.
 */
export interface PoolStarvation {
  /** `performance.now()` when it was gathered: every time below is measured to here. */
  readonly at: number;
  /** `pool.holders` (see {@link nameHolders}). */
  readonly holders: readonly string[];
  /** `pool.holders`, `pool.holders.count`, `db.client.connection.max`, `pool.pending`. */
  readonly attributes: Readonly<Attributes>;
  readonly facts: readonly HolderFacts[];
  /** Checkouts waiting: the pool's own count, else the waiting leases seen. */
  readonly waiting: number;
  readonly max: number | undefined;
  /** The pool's last checkin, `performance.now()`; 0 if none. */
  readonly lastCheckinAt: number;
}

interface Cached {
  readonly version: number;
  readonly millisecond: number;
  readonly starvation: PoolStarvation;
}

/** The last gathering per pool, reused within the same millisecond while nothing changed (a storm of failures). */
const cache = new WeakMap<object, Cached>();

/**
 * The starvation of `pool` at `now`. Reads every holder (at most the pool's `max`), never the
 * waiting leases: a sweep over many stalled waiters of one pool, or a storm of failures within a
 * millisecond, gathers it once.
 */
export function starvationOf(pool: TrackedPool<Holder>, now = performance.now()): PoolStarvation {
  const millisecond = Math.floor(now);
  const cached = cache.get(pool);
  if (cached !== undefined && cached.version === pool.holdersVersion && cached.millisecond === millisecond) return cached.starvation;
  const { holders, facts } = nameHolders(pool, now);
  const attributes = exhaustedPoolAttributes(pool, holders);
  const pending = attributes[ATTR_POOL_PENDING];
  const max = attributes[ATTR_DB_CLIENT_CONNECTION_MAX];
  const starvation: PoolStarvation = {
    at: now,
    holders,
    attributes,
    facts,
    waiting: typeof pending === 'number' ? pending : pool.waitingLeases.size,
    max: typeof max === 'number' ? max : undefined,
    lastCheckinAt: pool.lastCheckinAt,
  };
  cache.set(pool, { version: pool.holdersVersion, millisecond, starvation });
  return starvation;
}

/** The verdict for a checkout requested at `requestedAt` (see {@link exhaustionCause}). */
export function causeFor(starvation: PoolStarvation, requestedAt: number): ExhaustionCause {
  return exhaustionCause({
    holders: starvation.facts,
    waitedMs: Math.max(0, starvation.at - requestedAt),
    checkinsDuringWait: starvation.lastCheckinAt > requestedAt,
    // The starved checkout waits too, even where the library already dropped it from its queue (a timeout).
    waiting: Math.max(1, starvation.waiting),
    max: starvation.max,
  });
}

/** The pool's starvation attributes with the waiter's `pool.wait_ms` and verdict. */
export function starvedWaiterAttributes(starvation: PoolStarvation, requestedAt: number, cause: ExhaustionCause): Attributes {
  return {
    ...starvation.attributes,
    [ATTR_POOL_WAIT_MS]: Math.max(0, starvation.at - requestedAt),
    [ATTR_POOL_EXHAUSTION_CAUSE]: cause,
  };
}

/** What a checkout that failed on an exhausted pool carries: its `pool.exhausted` attributes, the holders and the verdict. */
export interface ExhaustedCheckout {
  readonly attributes: Attributes;
  readonly holders: readonly string[];
  readonly cause: ExhaustionCause;
}

/** The `pool.exhausted` event's attributes (holders, counters, `pool.exhaustion.cause`) for a checkout requested at `requestedAt`. */
export function exhaustedAttributes(pool: TrackedPool<Holder>, requestedAt: number, now: number): ExhaustedCheckout {
  const starvation = starvationOf(pool, now);
  const cause = causeFor(starvation, requestedAt);
  return { attributes: { ...starvation.attributes, [ATTR_POOL_EXHAUSTION_CAUSE]: cause }, holders: starvation.holders, cause };
}
