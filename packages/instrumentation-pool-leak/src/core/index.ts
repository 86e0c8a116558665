/**
 * What the lease core publishes to adapters: types only. Adapters translate a library's
 * acquire/release/statement points into calls on these; they reach no other core module.
 */
export type { CapturedStack } from '../call-site/stack';
export type { Lease } from './lease';
export type { LeaseCore } from './lease-core';
export type { ServerStatusReader, ServerTransactionStatus } from './lease-state';
export type { PoolProbe, ReleasePolicy } from './pool-probe';
export type { PoolDescription } from './tracked-pool';
