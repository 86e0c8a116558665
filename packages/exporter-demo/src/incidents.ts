// The sizes of the demo's two added incidents. Fixed per profile rather than flags: they are
// chosen so that each pool tells one story in the report, whatever the billing flags are.
import type { CartOptions } from './carts';
import type { CatalogOptions } from './catalog';
import type { DemoOptions } from './cli';

/** Incident (a): a catalog pool of two connections and rushes of concurrent searches. */
export interface CatalogRushPlan {
  readonly pool: CatalogOptions;
  /** Searches sent at the same moment. */
  readonly rushSize: number;
  readonly rounds: number;
  readonly intervalMs: number;
}

/** Incident (b): checkouts whose connection the cart page borrows through module state. */
export interface CartPlan {
  readonly pool: CartOptions;
  readonly rounds: number;
  readonly intervalMs: number;
}

export interface IncidentPlan {
  readonly catalog: CatalogRushPlan;
  readonly carts: CartPlan;
}

/**
 * Two connections, 16 searches at once, each holding its connection ~50 ms: about ten get one
 * within the 250 ms checkout timeout and the rest time out — eight times more demand than
 * connections, and every connection comes back.
 */
const CATALOG_POOL: CatalogOptions = { max: 2, checkoutTimeoutMs: 250, searchMs: 50 };
const RUSH_SIZE = 16;
/** Large enough that carts never wait: its only story is the shared connection. */
const CARTS_POOL = { max: 4, paymentMs: 150 };

export function incidentPlan(options: DemoOptions): IncidentPlan {
  // A rush lasts ~300 ms and a cart round ~600 ms; the pauses keep the extra load light, so the
  // billing pool still runs dry early in a --short run on a slow machine.
  const rushIntervalMs = options.short ? 1500 : 2000;
  const cartIntervalMs = options.short ? 700 : 1000;
  return {
    catalog: { pool: CATALOG_POOL, rushSize: RUSH_SIZE, rounds: roundsIn(options.durationMs, rushIntervalMs), intervalMs: rushIntervalMs },
    carts: {
      // One and a half thresholds: past it whatever the sweep's timing, yet always checked in.
      pool: { ...CARTS_POOL, checkoutTimeoutMs: options.checkoutTimeoutMs, totalsQueryMs: Math.round(options.thresholdMs * 1.5) },
      rounds: roundsIn(options.durationMs, cartIntervalMs),
      intervalMs: cartIntervalMs,
    },
  };
}

function roundsIn(durationMs: number, intervalMs: number): number {
  return Math.max(1, Math.ceil(durationMs / intervalMs));
}
