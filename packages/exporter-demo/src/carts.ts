// Incident (b): a connection shared between requests through module state. The checkout route
// keeps its transaction's client in a module variable so that "the cart page sees the reserved
// items"; the cart page, another request, then runs its statement on that client while the
// checkout still holds it. It works most of the time, which is why it ships: the instrumentation
// flags each such statement (pool.use.foreign_context) with both call sites.
// Loaded only after the SDK started, so that `pg` is patched when it is first required.
import type pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDatabase, createPool, type DatabaseOptions, type PoolSizing } from './pools';

export const CARTS_DATABASE = 'carts';
const CARTS = 50;

export interface CartOptions extends PoolSizing {
  /** How long the checkout waits for the payment provider, inside its open transaction. */
  readonly paymentMs: number;
  /** How long the totals query runs: longer than the leak threshold, so it is reported, as busy. */
  readonly totalsQueryMs: number;
}

/**
 * THE BUG: the checkout in progress, in module state. Every request of the process sees it, not
 * only the one that opened the transaction.
 */
let openCheckout: pg.PoolClient | undefined;

/** Creates the carts database and its table; returns where the carts pool connects. */
export function createCartsDatabase(server: DatabaseOptions): Promise<DatabaseOptions> {
  return createDatabase(
    server,
    CARTS_DATABASE,
    `CREATE TABLE IF NOT EXISTS carts (id int PRIMARY KEY, status text NOT NULL);
     TRUNCATE carts;
     INSERT INTO carts SELECT n, 'open' FROM generate_series(1, ${CARTS}) AS n;`,
  );
}

const cartId = (id: number) => ((id - 1) % CARTS) + 1;

export class CartService {
  readonly pool: pg.Pool;

  constructor(
    database: DatabaseOptions,
    private readonly options: CartOptions,
  ) {
    this.pool = createPool(database, options);
  }

  /** Reserves the cart in a transaction, waits for the payment, commits. Always checks in. */
  async beginCheckout(id: number): Promise<{ id: number; paid: true }> {
    const client = await this.pool.connect();
    openCheckout = client;
    try {
      await client.query('BEGIN');
      await client.query("UPDATE carts SET status = 'reserved' WHERE id = $1", [cartId(id)]);
      await sleep(this.options.paymentMs);
      await client.query("UPDATE carts SET status = 'open' WHERE id = $1", [cartId(id)]);
      await client.query('COMMIT');
      return { id, paid: true };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      if (openCheckout === client) openCheckout = undefined;
      client.release();
    }
  }

  /**
   * Slow, not leaking: the cart totals are one query that runs past the leak threshold. The leak
   * report shows its lease as `busy` (waiting on its statement), and the report calls the call
   * path a slow query, not a leak: the connection comes back when the query ends.
   */
  async cartTotals(id: number): Promise<{ id: number; carts: number }> {
    const client = await this.pool.connect();
    try {
      const { rows } = await client.query<{ carts: number }>('SELECT pg_sleep($1), count(*)::int AS carts FROM carts', [
        this.options.totalsQueryMs / 1000,
      ]);
      return { id, carts: rows[0]?.carts ?? 0 };
    } finally {
      client.release();
    }
  }

  /** Reads through the open checkout's connection when there is one: another request's client. */
  async viewCart(id: number): Promise<{ id: number; status: string }> {
    const db = openCheckout ?? this.pool;
    const { rows } = await db.query<{ id: number; status: string }>('SELECT id, status FROM carts WHERE id = $1', [cartId(id)]);
    return rows[0] ?? { id, status: 'unknown' };
  }
}
