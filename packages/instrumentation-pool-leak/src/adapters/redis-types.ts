/** The parts of node-redis 5 (`@redis/client`) the redis adapter touches. */

/** A function the pool runs with one of its clients; the client goes back when it settles. */
export type RedisTask = (this: unknown, client: object) => unknown;

/**
 * `RedisClientPool`: the object `createClientPool` returns is a proxy made with `Object.create`
 * of the real pool (and `withTypeMapping()` etc. make more proxies); `_self` is the real one.
 */
export interface RedisClientPool {
  readonly _self: RedisClientPool;
  readonly idleClients: number;
  readonly clientsInUse: number;
  readonly tasksQueueLength: number;
  execute(fn: RedisTask): Promise<unknown>;
  destroy(): void;
}

/** What `createClientPool(clientOptions, options)` may be given; only the server part is read. */
export interface RedisClientOptions {
  readonly url?: unknown;
  readonly database?: unknown;
  readonly socket?: { readonly host?: unknown; readonly port?: unknown; readonly path?: unknown };
}

export interface RedisPoolOptions {
  readonly maximum?: unknown;
}

export interface RedisClientPoolClass {
  readonly prototype: RedisClientPool;
  create(clientOptions?: RedisClientOptions, options?: RedisPoolOptions): RedisClientPool;
}

/** `@redis/client/dist/lib/client/pool.js`. */
export interface RedisPoolModule {
  readonly RedisClientPool: RedisClientPoolClass;
}
