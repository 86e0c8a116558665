import { acquiring, BESIDE, defineAdapter, followPromise, releasing } from './kit/kit';
import type { GenericPool, GenericPoolModule } from './generic-pool-types';
import type { Lease, PoolProbe } from '../core';

const SUPPORTED_VERSIONS = ['>=3.0.0 <4'];
/** generic-pool's `TimeoutError` when `acquireTimeoutMillis` passes. */
const TIMEOUT_MESSAGE = 'ResourceRequest timed out';
/** The immediate rejection when `maxWaitingClients` requests already wait. */
const QUEUE_FULL_MESSAGE = 'max waitingClients count exceeded';

/**
 * generic-pool 3.x: `Pool.prototype.acquire` is the acquire point (`pool.use` goes through it),
 * `release` and `destroy` are the release points; all three take the resource object, so the
 * core finds the lease by it. The checkin is reported before the pool runs, and the pool's own
 * promise (which rejects for a resource it has not lent) is the one the application gets.
 * generic-pool pools have no name and no server: the pool name is the library name.
 */
export const genericPoolAdapter = defineAdapter(({ core, module }) => [
  module('generic-pool', SUPPORTED_VERSIONS, (moduleExports: GenericPoolModule, hook) => {
    const prototype = moduleExports.Pool.prototype;
    hook(prototype, 'acquire', (original) => acquiring(core, genericPoolProbe, original, followAcquire));
    // Held, but lent by another pool: this pool rejects the release and the lease stays held.
    const lent = (pool: GenericPool, resource: unknown) => pool.isBorrowedResource(resource);
    hook(prototype, 'release', (original) => releasing(core, original, { lent }));
    hook(prototype, 'destroy', (original) => releasing(core, original, { lent, destroyed: true }));
  }),
]);

const genericPoolProbe: PoolProbe<GenericPool> = {
  library: 'generic-pool',
  describe: (pool) => ({ library: 'generic-pool', maxConnections: pool.max }),
  pendingAhead(pool) {
    // `pending` counts every queued request; with priorities some of them may be behind.
    const pending = pool.pending;
    const full = pool.available < 1 && pool.spareResourceCapacity < 1;
    return pending > 0 || full ? pending : undefined;
  },
  stats: (pool) => ({ idle: pool.available, used: pool.borrowed, pending: pool.pending, max: pool.max }),
  isTimeout,
  isExhausted: (error) => isTimeout(error) || (error instanceof Error && error.message === QUEUE_FULL_MESSAGE),
};

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === 'TimeoutError' && error.message === TIMEOUT_MESSAGE;
}

/**
 * Learns how the acquire ends without changing what the application sees. A queued request's
 * promise already carries generic-pool's own rejection handler (its wait queue attaches one), so
 * a branch of ours beside it changes nothing, and the application keeps the very promise the
 * pool returned. An immediate rejection has no handler: there the application gets our chained
 * promise (see {@link followPromise}). When the counts could not be read, the chain is the safe
 * choice.
 */
function followAcquire(lease: Lease, run: () => PromiseLike<unknown>, pool: GenericPool): PromiseLike<unknown> {
  const demandBefore = demandOf(pool);
  const result = run();
  return followPromise(lease, result, demandOf(pool) > demandBefore ? BESIDE : undefined);
}

/**
 * Requests queued plus resources lent: it grows exactly when `acquire` queued the request
 * (whether or not it was served at once), and stays put when `acquire` rejected at once
 * (pool draining, wait queue full). -1 if the pool cannot tell, which reads as "not queued".
 */
function demandOf(pool: GenericPool): number {
  try {
    return pool.pending + pool.borrowed;
  } catch {
    return -1;
  }
}
