import { hasSubscribers } from 'node:diagnostics_channel';
import { serverOfConnectionString } from './kit/connection-string';
import { defineAdapter, failingOnThrow, type AdapterCore } from './kit/kit';
import type { RedisClientOptions, RedisClientPool, RedisPoolModule, RedisPoolOptions, RedisTask } from './redis-types';
import type { Lease, PoolDescription, PoolProbe } from '../core';

const SUPPORTED_VERSIONS = ['>=5.0.0 <6'];
const POOL_FILE = '@redis/client/dist/lib/client/pool.js';
/** node-redis's own default `maximum` (`RedisClientPool`'s defaults). */
const DEFAULT_MAXIMUM = 100;
/** The `TimeoutError` (a bare subclass of Error) the pool rejects with after `acquireTimeout`. */
const ACQUIRE_TIMEOUT_MESSAGE = 'Timeout waiting for a client';

/**
 * node-redis 5 client pools (`createClientPool`, `client.createPool()`): `execute(fn)` is the
 * one acquire point — every command, `multi().exec()` and `sendCommand` call it — and `fn`
 * holds the client until the value it returns settles, then the pool takes the client back
 * (`#executeTask`). So a lease runs from `execute` to the settlement of `fn`'s result, and a
 * task that never settles is a client that never comes back. `destroy()` closes every client
 * and never runs the tasks still queued: the core ends both kinds of lease there.
 */
export const redisAdapter = defineAdapter(({ core, module, file }) => {
  /** What `create` was told about each pool (keyed by the real pool, `_self`). */
  const described = new WeakMap<object, PoolDescription>();
  const probe = redisProbe(described);
  return [
    module('@redis/client', SUPPORTED_VERSIONS, undefined, [
      file(POOL_FILE, SUPPORTED_VERSIONS, (moduleExports: RedisPoolModule, hook) => {
        const poolClass = moduleExports.RedisClientPool;
        hook(poolClass, 'create', (original) =>
          function create(this: unknown, ...args: [RedisClientOptions?, RedisPoolOptions?]) {
            const pool = original.apply(this, args);
            remember(pool, args[0], args[1]);
            return pool;
          },
        );
        hook(poolClass.prototype, 'execute', (original) => executing(core, probe, original));
        hook(poolClass.prototype, 'destroy', (original) =>
          function destroy(this: RedisClientPool) {
            try {
              return original.apply(this);
            } finally {
              core().poolEnded(selfOf(this), destroy, true);
            }
          },
        );
      }),
    ]),
  ];

  function remember(pool: RedisClientPool, clientOptions: RedisClientOptions | undefined, options: RedisPoolOptions | undefined): void {
    try {
      described.set(selfOf(pool), describe(clientOptions, options));
    } catch (error) {
      core().reportError('redis create', error);
    }
  }
});

function executing(
  core: () => AdapterCore,
  probe: PoolProbe<RedisClientPool>,
  original: RedisClientPool['execute'],
): RedisClientPool['execute'] {
  return function execute(this: RedisClientPool, ...args: [RedisTask]) {
    const fn = args[0];
    if (typeof fn !== 'function') return original.apply(this, args);
    const self = selfOf(this);
    const lease = core().checkout(self, probe, execute);
    if (lease === undefined) return original.apply(this, args);
    const result = failingOnThrow(lease, original, this, [holdingTask(lease, fn)]);
    // Chained, not beside: the application's promise stays unhandled exactly when it was.
    return result.then(undefined, (error: unknown) => {
      lease.failed(error);
      throw error;
    });
  };
}

/**
 * The application's (or the command's) task, reporting the grant and running in the caller's
 * context; the checkin follows what the pool itself waits for: a `Promise` result settling,
 * anything else at once. A task that throws never gives its client back (node-redis keeps it
 * in use), so its lease stays held, as the client does.
 */
function holdingTask(lease: Lease, task: RedisTask): RedisTask {
  return function leasedTask(this: unknown, client: object) {
    lease.granted(client);
    const checkin = () => lease.checkin(false, leasedTask);
    const result = lease.runInCallerContext(task, this, [client]);
    if (result instanceof Promise) result.then(checkin, checkin);
    else checkin();
    return result;
  };
}

function selfOf(pool: RedisClientPool): RedisClientPool {
  return pool._self ?? pool;
}

function redisProbe(described: WeakMap<object, PoolDescription>): PoolProbe<RedisClientPool> {
  return {
    library: 'redis',
    describe: (pool) => described.get(pool) ?? { library: 'redis', dbSystem: 'redis' },
    pendingAhead: (pool) => (pool.idleClients === 0 ? pool.tasksQueueLength : undefined),
    stats: (pool) => ({ idle: pool.idleClients, used: pool.clientsInUse, pending: pool.tasksQueueLength }),
    reportedElsewhere: nodeRedisOwnMetrics,
    isTimeout,
    isExhausted: isTimeout,
  };
}

/**
 * node-redis (≥ 5.12) reports metrics of its own once the application calls
 * `OpenTelemetry.init({ metrics: { enabled: true } })`: its `connection-basic` group (on by
 * default) counts `db.client.connection.count` per connection of every client, pool clients
 * included; its `connection-advanced` group records `db.client.connection.wait_time` for pool
 * waits. Each group is fed by node-redis's diagnostics channels, which nothing else listens to:
 * a subscriber on the channel is that group switched on, for every pool of the process.
 * (`db.client.connection.pending_requests` it declares but never observes.)
 */
const NODE_REDIS_METRIC_CHANNELS = [
  ['node-redis:connection:ready', 'db.client.connection.count'],
  ['node-redis:pool:connection-wait', 'db.client.connection.wait_time'],
] as const;

function nodeRedisOwnMetrics(): ReadonlySet<string> | undefined {
  let reported: Set<string> | undefined;
  for (const [channel, instrument] of NODE_REDIS_METRIC_CHANNELS) if (hasSubscribers(channel)) (reported ??= new Set()).add(instrument);
  return reported;
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.constructor.name === 'TimeoutError' && error.message === ACQUIRE_TIMEOUT_MESSAGE;
}

/** Server, port and database index from the client options; never a user name or password. */
function describe(clientOptions: RedisClientOptions | undefined, options: RedisPoolOptions | undefined): PoolDescription {
  const fromUrl = typeof clientOptions?.url === 'string' ? serverOfConnectionString(clientOptions.url) : {};
  const socket = clientOptions?.socket;
  const host = typeof socket?.host === 'string' ? socket.host : (fromUrl.host ?? (typeof socket?.path === 'string' ? undefined : 'localhost'));
  const port = typeof socket?.port === 'number' ? socket.port : (fromUrl.port ?? (host === undefined ? undefined : 6379));
  const database = typeof clientOptions?.database === 'number' ? String(clientOptions.database) : (fromUrl.database ?? '0');
  const maximum = typeof options?.maximum === 'number' ? options.maximum : DEFAULT_MAXIMUM;
  return { library: 'redis', dbSystem: 'redis', serverAddress: host, serverPort: port, namespace: database, maxConnections: maximum };
}
