// Incident (a): honest code on a pool too small for its traffic. Every search checks out, runs a
// short query and checks in (pool.query does both), yet a rush of concurrent searches queues
// behind two connections, waits, and times out. Nothing leaks: the report must call this pool
// undersized and say by how much, not blame a call site.
// Loaded only after the SDK started, so that `pg` is patched when it is first required.
import type pg from 'pg';
import { createDatabase, createPool, type DatabaseOptions, type PoolSizing } from './pools';

export const CATALOG_DATABASE = 'catalog';
const PRODUCTS = 50;

export interface CatalogOptions extends PoolSizing {
  /** How long one search holds its connection: short, like a real indexed lookup plus work. */
  readonly searchMs: number;
}

/** Creates the catalog database and its table; returns where the catalog pool connects. */
export function createCatalogDatabase(server: DatabaseOptions): Promise<DatabaseOptions> {
  return createDatabase(
    server,
    CATALOG_DATABASE,
    `CREATE TABLE IF NOT EXISTS products (id int PRIMARY KEY, name text NOT NULL);
     TRUNCATE products;
     INSERT INTO products SELECT n, 'product ' || n FROM generate_series(1, ${PRODUCTS}) AS n;`,
  );
}

export class CatalogService {
  readonly pool: pg.Pool;

  constructor(
    database: DatabaseOptions,
    private readonly options: CatalogOptions,
  ) {
    this.pool = createPool(database, options);
  }

  /** Healthy code: one statement through pool.query, which checks out and in by itself. */
  async search(id: number): Promise<{ id: number; name: string }> {
    const { rows } = await this.pool.query<{ id: number; name: string }>(
      'SELECT p.id, p.name FROM products p, pg_sleep($2) WHERE p.id = $1',
      [((id - 1) % PRODUCTS) + 1, this.options.searchMs / 1000],
    );
    return rows[0] ?? { id, name: '' };
  }
}
