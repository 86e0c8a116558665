import { InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import { knexHooks } from './knex';
import type { Lease } from '../lease';
import type { LeaseCore, PoolProbe } from '../lease-core';
import type { PoolDescription } from '../tracked-pool';
import { commonJsExports, type AdapterContext, type PoolAdapter } from './adapter';
import type { TarnModule, TarnPendingOperation, TarnPool } from './tarn-types';

const SUPPORTED_VERSIONS = ['>=3.0.0 <4'];

/**
 * tarn 3.x, and so knex (whose `KnexPool` extends tarn's `Pool`) and mssql: `Pool.prototype.acquire`
 * is the acquire point, `release` the only release point (tarn has no per-resource destroy: it
 * validates and destroys resources itself). The granted resource is the driver's connection (a
 * `pg.Client` under knex), so statements that pg-pool's adapter sees on it are matched to the
 * lease. A tarn pool has no name and no server of its own: the pool name is the library name,
 * except for pools knex created, which knex describes (`adapters/knex.ts`).
 */
export const tarnAdapter: PoolAdapter = {
  library: 'tarn',
  moduleDefinitions(adapterContext: AdapterContext) {
    const { core, patcher } = adapterContext;
    const knex = knexHooks(adapterContext);
    const probe = tarnProbe(knex.poolDescription);
    return [
      // knex's pool is a tarn pool: these only carry the call site and describe the server.
      new InstrumentationNodeModuleDefinition('knex', ['>=1.0.0 <4'], undefined, undefined, knex.files),
      new InstrumentationNodeModuleDefinition(
        'tarn',
        SUPPORTED_VERSIONS,
        (moduleExports: TarnModule) => {
          const tarn = commonJsExports(moduleExports);
          if (typeof tarn.TimeoutError === 'function') timeoutErrorClasses.add(tarn.TimeoutError);
          patcher.wrap(tarn.Pool.prototype, 'acquire', (original) => wrapAcquire(original, core, probe));
          patcher.wrap(tarn.Pool.prototype, 'release', (original) => wrapRelease(original, core));
          return moduleExports;
        },
        (moduleExports: TarnModule | undefined) => {
          if (moduleExports === undefined) return;
          const prototype = commonJsExports(moduleExports).Pool.prototype;
          patcher.unwrap(prototype, 'acquire');
          patcher.unwrap(prototype, 'release');
        },
      ),
    ];
  },
};

/**
 * tarn's `TimeoutError` class of every tarn copy patched. Its instances are named plain `Error`
 * (the class sets no name), so the class itself is the reliable mark.
 */
const timeoutErrorClasses = new WeakSet<Function>();

/** One probe per instrumentation instance: the pools knex described are that instance's. */
const tarnProbe = (knexPoolDescription: (pool: object) => PoolDescription | undefined): PoolProbe<TarnPool> => ({
  describe: (pool) => ({ ...(knexPoolDescription(pool) ?? { library: 'tarn' }), maxConnections: pool.max }),
  pendingAhead(pool) {
    const pending = pool.numPendingAcquires();
    const full = pool.numFree() === 0 && pool.numUsed() + pool.numPendingCreates() >= pool.max;
    return pending > 0 || full ? pending : undefined;
  },
  stats: (pool) => ({ idle: pool.numFree(), used: pool.numUsed(), pending: pool.numPendingAcquires(), max: pool.max }),
  isTimeout: (error) => error instanceof Error && timeoutErrorClasses.has(error.constructor),
});

function wrapAcquire(original: TarnPool['acquire'], core: () => LeaseCore, probe: PoolProbe<TarnPool>): TarnPool['acquire'] {
  return function acquire(this: TarnPool) {
    const lease = core().checkout(this, probe, acquire);
    if (lease === undefined) return original.apply(this, arguments as unknown as []);
    let operation: TarnPendingOperation;
    try {
      operation = original.apply(this, arguments as unknown as []);
    } catch (error) {
      lease.failed(error);
      throw error;
    }
    follow(lease, operation);
    return operation;
  };
}

/**
 * tarn reassigns `operation.promise` to a chain of its own right after creating the request, and
 * everyone (the application, knex, and tarn itself when it aborts or destroys) reads the
 * property afterwards; this does the same once more. Our chain settles exactly like tarn's, one
 * microtask later, and is the only handler on tarn's promise, so a rejection is unhandled exactly
 * when nobody reads `.promise` or nobody handles it, as without the instrumentation. A handler
 * beside tarn's promise instead would mark it handled and hide such a rejection.
 */
function follow(lease: Lease, operation: TarnPendingOperation): void {
  const promise: unknown = operation?.promise;
  if (promise === null || typeof promise !== 'object' || typeof (promise as PromiseLike<unknown>).then !== 'function') {
    lease.failed(new Error('tarn acquire() returned no pending operation'));
    return;
  }
  operation.promise = (promise as PromiseLike<unknown>).then(
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
 * tarn answers a release with a boolean: true if it lent the resource and took it back. The lease
 * is settled after that answer, which is safe because tarn never lends the resource again inside
 * `release` (it validates before lending, always asynchronously), so the checkin cannot meet the
 * next lease. tarn can only throw after it took the resource back, hence "accepted" until told
 * otherwise.
 */
function wrapRelease(original: TarnPool['release'], core: () => LeaseCore): TarnPool['release'] {
  return function release(this: TarnPool, resource: unknown) {
    let accepted = true;
    try {
      const result = original.apply(this, arguments as unknown as [unknown]);
      accepted = result === true;
      return result;
    } finally {
      settleRelease(core(), this, resource, accepted, release);
    }
  };
}

function settleRelease(core: LeaseCore, pool: TarnPool, resource: unknown, accepted: boolean, boundary: Function): void {
  try {
    const lease = core.leaseOf(resource, pool);
    if (lease === undefined) return;
    // Held, but lent by another pool: tarn refused it and the lease stays held.
    if (!accepted && lease.isHeld) lease.invalidRelease('foreign', boundary);
    else core.releaseConnection(resource, false, boundary, pool);
  } catch (error) {
    core.reportError('tarn release', error);
  }
}
