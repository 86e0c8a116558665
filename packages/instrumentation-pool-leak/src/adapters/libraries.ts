/**
 * Pool libraries this instrumentation knows by name (the adapter names of DESIGN.md): the one
 * list. `ADAPTERS` (adapters/index.ts) maps each name to its adapter; the face re-exports it.
 */
export const POOL_LIBRARIES = ['pg-pool', 'mysql2', 'mariadb', 'generic-pool', 'tarn', 'sequelize-pool', 'postgres', 'redis'] as const;

/** One of {@link POOL_LIBRARIES}. */
export type PoolLibrary = (typeof POOL_LIBRARIES)[number];
