import type { PoolAdapter } from './adapter';
import { pgPoolAdapter } from './pg-pool';

/** Every adapter this package ships, by library name. */
export const ADAPTERS: readonly PoolAdapter[] = [pgPoolAdapter];
