import type { PoolAdapter } from './adapter';
import type { CallSiteHook } from './call-site-hooks';
import { drizzleHook } from './drizzle';
import { prismaHook } from './prisma';
import { genericPoolAdapter } from './generic-pool';
import { mariadbAdapter } from './mariadb';
import { mysql2Adapter } from './mysql2';
import { pgPoolAdapter } from './pg-pool';
import { tarnAdapter } from './tarn';

/** Every adapter this package ships, by library name. */
export const ADAPTERS: readonly PoolAdapter[] = [pgPoolAdapter, mysql2Adapter, mariadbAdapter, genericPoolAdapter, tarnAdapter];

/**
 * Call-site hooks of query builders and ORMs that run queries from `then()` (knex's are part
 * of the `tarn` adapter, whose pool knex uses). See `call-site-hooks.ts`.
 */
export const CALL_SITE_HOOKS: readonly CallSiteHook[] = [drizzleHook, prismaHook];
