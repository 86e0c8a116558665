import type { PoolAdapter } from './adapter';
import { genericPoolAdapter } from './generic-pool';
import { mariadbAdapter } from './mariadb';
import { mysql2Adapter } from './mysql2';
import { pgPoolAdapter } from './pg-pool';
import { tarnAdapter } from './tarn';

/** Every adapter this package ships, by library name. */
export const ADAPTERS: readonly PoolAdapter[] = [pgPoolAdapter, mysql2Adapter, mariadbAdapter, genericPoolAdapter, tarnAdapter];
