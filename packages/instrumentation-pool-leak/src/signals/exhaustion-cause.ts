// The one rule that says why a pool ran dry (`pool.exhaustion.cause`). Plain data in, a verdict
// out: the core gathers the facts when a checkout fails on an exhausted pool or stalls, the rule
// decides. The package README ("Why the pool ran dry") documents it; keep the two together.

/** Values of `pool.exhaustion.cause`. */
export type ExhaustionCause = 'leaked_connections' | 'slow_queries' | 'undersized_pool' | 'mixed';

/** Every value of {@link ExhaustionCause}, for metric attribute caches and documentation. */
export const EXHAUSTION_CAUSES: readonly ExhaustionCause[] = ['leaked_connections', 'slow_queries', 'undersized_pool', 'mixed'];

/** One holder of the pool at the moment the verdict is asked for. */
export interface HolderFacts {
  /** Milliseconds since the holder was granted its connection. */
  readonly heldMs: number;
  /** Whether a statement is running on its connection right now. */
  readonly busy: boolean;
  /** Milliseconds in that state: since the running statement started, or since the connection went idle. */
  readonly stateMs: number;
}

/** What a starved checkout saw: the pool's holders, how long it waited, and the pool's turnover. */
export interface StarvationFacts {
  /** Every holder of the pool (not only the ten named on the span). */
  readonly holders: readonly HolderFacts[];
  /** Milliseconds the starved checkout has waited (0 for an immediate rejection). */
  readonly waitedMs: number;
  /** Whether any connection was checked in to the pool since the starved checkout asked. */
  readonly checkinsDuringWait: boolean;
  /** Checkouts waiting for a connection, the starved one included. */
  readonly waiting: number;
  /** The pool's upper bound of connections, when known. */
  readonly max: number | undefined;
}

/**
 * The verdict. Each holder is put in one class, against the waiter's wait:
 * - *stuck idle*: held at least as long as the waiter has waited, no statement running
 *   (idle, or idle in a transaction);
 * - *stuck in a statement*: busy in a statement that has run at least as long as the waiter has
 *   waited (it started before the waiter asked);
 * - *turned over*: granted after the waiter asked (held for less than the wait).
 *
 * Then, "most" meaning strictly more than half of the holders:
 * 1. most holders stuck idle → `leaked_connections`;
 * 2. most holders stuck in a statement → `slow_queries`;
 * 3. most holders turned over, a connection was checked in during the wait, and demand
 *    (holders + waiters) is above `max` (or, with `max` unknown, someone waits) → `undersized_pool`;
 * 4. anything else (no holder, a split, a pool not yet at `max`) → `mixed`.
 */
export function exhaustionCause(facts: StarvationFacts): ExhaustionCause {
  const { holders, waitedMs } = facts;
  const count = holders.length;
  if (count === 0) return 'mixed';
  let stuckIdle = 0;
  let stuckInStatement = 0;
  let turnedOver = 0;
  for (const holder of holders) {
    if (holder.heldMs < waitedMs) turnedOver++;
    else if (!holder.busy) stuckIdle++;
    else if (holder.stateMs >= waitedMs) stuckInStatement++;
  }
  if (stuckIdle * 2 > count) return 'leaked_connections';
  if (stuckInStatement * 2 > count) return 'slow_queries';
  const demandAboveMax = facts.max === undefined ? facts.waiting > 0 : count + facts.waiting > facts.max;
  if (turnedOver * 2 > count && facts.checkinsDuringWait && demandAboveMax) return 'undersized_pool';
  return 'mixed';
}
