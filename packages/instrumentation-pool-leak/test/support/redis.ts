// The real Redis the global setup started (test/setup/redis.ts), and node-redis loaded after the
// instrumentation is registered.
import { createRequire } from 'node:module';
import { describe, inject } from 'vitest';
import type * as RedisModule from 'redis';
import type { RedisConnection } from '../../../../test/setup/redis-server';

export type Redis = typeof RedisModule;

const requireFromHere = createRequire(import.meta.url);

/** `require('redis')`: call only after setupTracing(), so require-in-the-middle patches the pool. */
export function loadRedis(): Redis {
  return requireFromHere('redis') as Redis;
}

/** Connection settings; throws when there is no server (call inside a {@link describeWithRedis}). */
export function requireRedisConfig(): RedisConnection {
  const availability = inject('redis');
  if (!('connection' in availability)) throw new Error('no Redis server in this test run');
  return availability.connection;
}

/** `redis://:<password>@host:port`: the password travels in the URL, as many applications do it. */
export function redisUrl(database = 0): string {
  const { host, port, password } = requireRedisConfig();
  return `redis://:${encodeURIComponent(password)}@${host}:${port}/${database}`;
}

/**
 * `describe`, skipped with the reason in its title when there is no Redis server; the global
 * setup prints the same reason in a banner, and CI (POOL_LEAK_REQUIRE_REDIS=1) never skips.
 */
export function describeWithRedis(name: string, body: () => void): void {
  const availability = inject('redis');
  if ('unavailable' in availability) describe.skip(`${name} [SKIPPED: ${availability.unavailable}]`, body);
  else describe(name, body);
}
