import { knexHooks } from './orm/knex';
import { acquiring, defineAdapter, followPromise, releasing } from './kit/kit';
import { mysql2ServerDbSystem } from './kit/server-status';
import type { TarnModule, TarnPendingOperation, TarnPool } from './tarn-types';
import type { Lease, PoolDescription, PoolProbe } from '../core';

const SUPPORTED_VERSIONS = ['>=3.0.0 <4'];

/**
 * tarn 3.x, and so knex (whose `KnexPool` extends tarn's `Pool`) and mssql: `Pool.prototype.acquire`
 * is the acquire point, `release` the only release point (tarn has no per-resource destroy: it
 * validates and destroys resources itself). The granted resource is the driver's connection (a
 * `pg.Client` under knex), so statements that pg-pool's adapter sees on it are matched to the
 * lease. A tarn pool has no name and no server of its own: the pool name is the library name,
 * except for pools knex created, which knex describes (`adapters/orm/knex.ts`); a mysql2
 * connection's greeting then says whether the server is MySQL or MariaDB.
 *
 * tarn answers a release with a boolean: true if it lent the resource and took it back. The lease
 * is settled after that answer, which is safe because tarn never lends the resource again inside
 * `release` (it validates before lending, always asynchronously), so the checkin cannot meet the
 * next lease.
 */
export const tarnAdapter = defineAdapter((kit) => {
  const { core, module } = kit;
  const knex = knexHooks(kit);
  /** tarn's `TimeoutError` class of every tarn copy patched: its instances are named plain `Error`. */
  const timeoutErrorClasses = new WeakSet<Function>();
  const probe = tarnProbe(knex.poolDescription, timeoutErrorClasses);
  return [
    // knex's pool is a tarn pool: these only carry the call site and describe the server.
    module('knex', ['>=1.0.0 <4'], undefined, knex.files),
    module('tarn', SUPPORTED_VERSIONS, (tarn: TarnModule, hook) => {
      if (typeof tarn.TimeoutError === 'function') timeoutErrorClasses.add(tarn.TimeoutError);
      hook(tarn.Pool.prototype, 'acquire', (original) => acquiring(core, probe, original, followAcquire));
      hook(tarn.Pool.prototype, 'release', (original) => releasing(core, original, { lentAfter: (accepted) => accepted === true }));
    }),
  ];
});

function tarnProbe(
  knexPoolDescription: (pool: object) => PoolDescription | undefined,
  timeoutErrorClasses: WeakSet<Function>,
): PoolProbe<TarnPool> {
  return {
    library: 'tarn',
    describe: (pool) => ({ ...(knexPoolDescription(pool) ?? { library: 'tarn' }), maxConnections: pool.max }),
    pendingAhead(pool) {
      const pending = pool.numPendingAcquires();
      const full = pool.numFree() === 0 && pool.numUsed() + pool.numPendingCreates() >= pool.max;
      return pending > 0 || full ? pending : undefined;
    },
    stats: (pool) => ({ idle: pool.numFree(), used: pool.numUsed(), pending: pool.numPendingAcquires(), max: pool.max }),
    isTimeout: (error) => error instanceof Error && timeoutErrorClasses.has(error.constructor),
    // knex's mysql2 client talks to MySQL and MariaDB alike: the server's greeting tells them apart.
    dbSystemOf: mysql2ServerDbSystem,
  };
}

/**
 * tarn reassigns `operation.promise` to a chain of its own right after creating the request, and
 * everyone (the application, knex, and tarn itself when it aborts or destroys) reads the
 * property afterwards; this does the same once more. Our chain settles exactly like tarn's, one
 * microtask later, and is the only handler on tarn's promise, so a rejection is unhandled exactly
 * when nobody reads `.promise` or nobody handles it, as without the instrumentation.
 */
function followAcquire(lease: Lease, run: () => TarnPendingOperation): TarnPendingOperation {
  const operation = run();
  if (typeof operation !== 'object' || operation === null) lease.failed(new Error('tarn acquire() returned no pending operation'));
  else operation.promise = followPromise(lease, operation.promise);
  return operation;
}
