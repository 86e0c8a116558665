import { InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import type { Lease } from '../lease';
import type { LeaseCore, PoolProbe } from '../lease-core';
import { commonJsExports, type AdapterContext, type PoolAdapter } from './adapter';
import type { GenericPool, GenericPoolModule } from './generic-pool-types';

const SUPPORTED_VERSIONS = ['>=3.0.0 <4'];
/** generic-pool's `TimeoutError` when `acquireTimeoutMillis` passes. */
const TIMEOUT_MESSAGE = 'ResourceRequest timed out';
/** The immediate rejection when `maxWaitingClients` requests already wait. */
const QUEUE_FULL_MESSAGE = 'max waitingClients count exceeded';

/**
 * generic-pool 3.x: `Pool.prototype.acquire` is the acquire point (`pool.use` goes through it),
 * `release` and `destroy` are the release points; all three take the resource object, so the
 * core finds the lease by it. generic-pool pools have no name and no server: the pool name is
 * the library name.
 */
export const genericPoolAdapter: PoolAdapter = {
  library: 'generic-pool',
  moduleDefinitions({ core, patcher }: AdapterContext) {
    return [
      new InstrumentationNodeModuleDefinition(
        'generic-pool',
        SUPPORTED_VERSIONS,
        (moduleExports: GenericPoolModule) => {
          const prototype = commonJsExports(moduleExports).Pool.prototype;
          patcher.wrap(prototype, 'acquire', (original) => wrapAcquire(original, core));
          patcher.wrap(prototype, 'release', (original) => wrapCheckin(original, core, false));
          patcher.wrap(prototype, 'destroy', (original) => wrapCheckin(original, core, true));
          return moduleExports;
        },
        (moduleExports: GenericPoolModule | undefined) => {
          if (moduleExports === undefined) return;
          const prototype = commonJsExports(moduleExports).Pool.prototype;
          patcher.unwrap(prototype, 'acquire');
          patcher.unwrap(prototype, 'release');
          patcher.unwrap(prototype, 'destroy');
        },
      ),
    ];
  },
};

const genericPoolProbe: PoolProbe<GenericPool> = {
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

function wrapAcquire(original: GenericPool['acquire'], core: () => LeaseCore): GenericPool['acquire'] {
  return function acquire(this: GenericPool) {
    const lease = core().checkout(this, genericPoolProbe, acquire);
    if (lease === undefined) return original.apply(this, arguments as unknown as [number?]);
    const demandBefore = demandOf(this);
    let result: PromiseLike<unknown>;
    try {
      result = original.apply(this, arguments as unknown as [number?]);
    } catch (error) {
      lease.failed(error);
      throw error;
    }
    return follow(lease, result, demandOf(this) > demandBefore);
  };
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

/**
 * Learns how the acquire ends without changing what the application sees. A queued request's
 * promise already carries generic-pool's own rejection handler (its wait queue attaches one), so
 * a branch of ours beside it changes nothing, and the application keeps the very promise the
 * pool returned. An immediate rejection has no handler: a branch of ours would mark it handled
 * and hide an unhandled rejection the application would have had, so there the application gets
 * our chained promise instead, which rejects with the same error and is unhandled exactly when
 * the application ignores it. It settles one microtask later than the pool's own, which only a
 * race against another promise settled in the same synchronous step could tell. When the counts
 * could not be read, the chain is the safe choice.
 */
function follow(lease: Lease, result: PromiseLike<unknown>, queued: boolean): PromiseLike<unknown> {
  if (result === null || typeof result !== 'object' || typeof result.then !== 'function') {
    lease.failed(new Error('generic-pool acquire() returned no promise'));
    return result;
  }
  if (queued) {
    result.then(
      (resource) => lease.granted(resource),
      (error: unknown) => lease.failed(error),
    );
    return result;
  }
  return result.then(
    (resource) => {
      lease.granted(resource);
      return resource;
    },
    (error: unknown) => {
      lease.failed(error);
      throw error;
    },
  );
}

/**
 * `release` (destroyed = false) and `destroy` (true): the lease is checked in before the pool
 * runs, and the pool's own call gets the original `this` and arguments, so its promise (which
 * rejects for a resource it has not lent) is the one the application gets.
 */
function wrapCheckin(
  original: GenericPool['release'],
  core: () => LeaseCore,
  destroyed: boolean,
): GenericPool['release'] {
  const checkin = function checkin(this: GenericPool, resource: unknown) {
    checkinResource(core(), this, resource, destroyed, checkin);
    return original.apply(this, arguments as unknown as [unknown]);
  };
  return checkin;
}

function checkinResource(core: LeaseCore, pool: GenericPool, resource: unknown, destroyed: boolean, boundary: Function): void {
  try {
    const lease = core.leaseOf(resource, pool);
    if (lease === undefined) return;
    // Held, but lent by another pool: this pool rejects the release and the lease stays held.
    if (lease.isHeld && !pool.isBorrowedResource(resource)) lease.invalidRelease('foreign', boundary);
    else core.releaseConnection(resource, destroyed, boundary, pool);
  } catch (error) {
    core.reportError('generic-pool checkin', error);
  }
}
