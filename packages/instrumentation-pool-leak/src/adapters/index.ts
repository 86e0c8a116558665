import type { PoolAdapter } from './kit/adapter';
import type { PoolLibrary } from './libraries';
import type { CallSiteHook } from './kit/call-site-hooks';
import { drizzleHook } from './orm/drizzle';
import { mikroOrmHook } from './orm/mikro-orm';
import { objectionHook } from './orm/objection';
import { prismaHook } from './orm/prisma';
import { sequelizeHook } from './orm/sequelize';
import { typeormHook } from './orm/typeorm';
import { genericPoolAdapter } from './generic-pool';
import { mariadbAdapter } from './mariadb';
import { mysql2Adapter } from './mysql2';
import { pgPoolAdapter } from './pg-pool';
import { postgresAdapter } from './postgres';
import { sequelizePoolAdapter } from './sequelize-pool';
import { redisAdapter } from './redis';
import { tarnAdapter } from './tarn';

/**
 * Every adapter this package ships, keyed by its name in `POOL_LIBRARIES` (types.ts), the one
 * list of library names: a name without an adapter, or an adapter without a name, does not compile.
 */
export const ADAPTERS: { readonly [Library in PoolLibrary]: PoolAdapter } = {
  'pg-pool': pgPoolAdapter,
  mysql2: mysql2Adapter,
  mariadb: mariadbAdapter,
  'generic-pool': genericPoolAdapter,
  tarn: tarnAdapter,
  'sequelize-pool': sequelizePoolAdapter,
  postgres: postgresAdapter,
  redis: redisAdapter,
};

/**
 * Call-site hooks of query builders and ORMs that run queries from `then()` (knex's are part
 * of the `tarn` adapter, whose pool knex uses). See `call-site-hooks.ts`.
 */
export const CALL_SITE_HOOKS: readonly CallSiteHook[] = [drizzleHook, prismaHook, sequelizeHook, typeormHook, mikroOrmHook, objectionHook];
