import { InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import { DB_SYSTEM_NAME_VALUE_POSTGRESQL } from '@opentelemetry/semantic-conventions';
import type { Lease } from '../lease';
import type { LeaseCore, PoolProbe } from '../lease-core';
import type { PoolDescription } from '../tracked-pool';
import { commonJsExports, type AdapterContext, type PoolAdapter } from './adapter';
import type { PgConnectCallback, PgPool, PgPoolClient, PgPoolConstructor, PgPoolOptions, PgRelease } from './pg-pool-types';

/** pg-pool 3.x, which is what `pg.Pool` (pg 8.x) extends. */
const SUPPORTED_VERSIONS = ['>=3.0.0 <4'];
const DEFAULT_MAX = 10;

/**
 * pg-pool: `Pool.prototype.connect` is the one acquire point (`pool.query` checks out through
 * it), and the pool hands out a fresh `client.release` per checkout, which is the release point.
 */
export const pgPoolAdapter: PoolAdapter = {
  library: 'pg-pool',
  moduleDefinitions({ core, patcher }: AdapterContext) {
    return [
      new InstrumentationNodeModuleDefinition(
        'pg-pool',
        SUPPORTED_VERSIONS,
        (moduleExports: PgPoolConstructor) => {
          const Pool = commonJsExports(moduleExports);
          patcher.wrap(Pool.prototype, 'connect', (original) => wrapConnect(original, core));
          return moduleExports;
        },
        (moduleExports: PgPoolConstructor | undefined) => {
          if (moduleExports === undefined) return;
          patcher.unwrap(commonJsExports(moduleExports).prototype, 'connect');
        },
      ),
    ];
  },
};

const pgPoolProbe: PoolProbe<PgPool> = {
  describe: describePgPool,
  pendingAhead(pool) {
    const waiting = pool.waitingCount;
    const full = pool.idleCount === 0 && pool.totalCount >= (pool.options.max ?? DEFAULT_MAX);
    return waiting > 0 || full ? waiting : undefined;
  },
};

function wrapConnect(original: PgPool['connect'], core: () => LeaseCore): PgPool['connect'] {
  return function connect(this: PgPool, callback?: PgConnectCallback) {
    const lease = core().checkout(this, pgPoolProbe, connect);
    if (lease === undefined) return original.apply(this, arguments as unknown as [PgConnectCallback?]);
    if (typeof callback === 'function') return original.call(this, leasedCallback(lease, callback));
    const result = original.apply(this, arguments as unknown as [PgConnectCallback?]);
    if (result === undefined || typeof result.then !== 'function') return result;
    return result.then(
      (client) => {
        grant(lease, client);
        return client;
      },
      (error: unknown) => {
        lease.failed(error);
        throw error;
      },
    );
  };
}

/** The application's callback, run in the caller's context with the lease's release. */
function leasedCallback(lease: Lease, callback: PgConnectCallback): PgConnectCallback {
  return function onCheckout(this: unknown, error, client, done) {
    let release = done;
    if (error) lease.failed(error);
    else if (client !== undefined) release = grant(lease, client);
    if (arguments.length < 3) return lease.runInCallerContext(callback, this, Array.from(arguments) as Parameters<PgConnectCallback>);
    return lease.runInCallerContext(callback, this, [error, client, release]);
  };
}

/** Marks the lease granted and puts a release in front of the pool's own one for this checkout. */
function grant(lease: Lease, client: PgPoolClient): PgRelease {
  lease.granted();
  const poolRelease = client.release;
  let released = false;
  const release: PgRelease = function release(this: unknown, error?: Error | boolean) {
    if (released) lease.invalidRelease('double_release', release);
    else {
      released = true;
      lease.checkin(Boolean(error));
    }
    // pg-pool decides what a release means (and throws on a double one): unchanged.
    return poolRelease.apply(this, arguments as unknown as [Error | boolean | undefined]);
  };
  client.release = release;
  return release;
}

/** Server, port and database the way pg resolves them: connection string first, then options. */
export function describePgPool(pool: PgPool): PoolDescription {
  const options: PgPoolOptions = pool.options ?? {};
  const fromUrl = parseConnectionString(options.connectionString);
  const host = fromUrl.host ?? options.host ?? process.env['PGHOST'] ?? 'localhost';
  const port = Number(fromUrl.port ?? options.port ?? process.env['PGPORT'] ?? 5432);
  const database = fromUrl.database ?? options.database ?? process.env['PGDATABASE'];
  return {
    library: 'pg-pool',
    dbSystem: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
    serverAddress: host,
    serverPort: Number.isFinite(port) ? port : undefined,
    namespace: database,
    maxConnections: options.max ?? DEFAULT_MAX,
  };
}

/** Host, port and database of a postgres:// URL; user and password are never read. */
function parseConnectionString(connectionString: string | undefined): { host?: string; port?: string; database?: string } {
  if (connectionString === undefined || connectionString === '') return {};
  try {
    const url = new URL(connectionString);
    const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
    return {
      ...(url.hostname !== '' && { host: decodeURIComponent(url.hostname) }),
      ...(url.port !== '' && { port: url.port }),
      ...(database !== '' && { database }),
    };
  } catch {
    return {};
  }
}
