// How many requests a run sends, per load and in all: the one place the announcement, the progress
// bar and the summary take their numbers from. Every load sends all it is planned to (load.ts).
import type { DemoOptions } from './cli';
import type { IncidentPlan } from './incidents';
import { cartRound } from './load';

/** Requests per load, and their sum. */
export interface RequestPlan {
  /** The billing load (`--requests`). */
  readonly billing: number;
  /** Catalog searches: rushes × rush size. */
  readonly catalog: number;
  /** Cart checkouts and views: rounds × requests per round. */
  readonly carts: number;
  /** The one slow cart-totals query. */
  readonly slowTotals: number;
  readonly total: number;
}

export function requestPlan(options: Pick<DemoOptions, 'requests'>, incidents: IncidentPlan): RequestPlan {
  const billing = options.requests;
  const catalog = incidents.catalog.rounds * incidents.catalog.rushSize;
  const carts = incidents.carts.rounds * cartRound(0).length;
  const slowTotals = 1;
  return { billing, catalog, carts, slowTotals, total: billing + catalog + carts + slowTotals };
}
