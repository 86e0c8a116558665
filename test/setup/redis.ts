// Starts one real Redis for the whole test run, for the node-redis adapter suites. Without a
// server binary the suites are skipped with the reason printed loudly, unless
// POOL_LEAK_REQUIRE_REDIS=1 (CI sets it): then a missing server fails the run.
import type { TestProject } from 'vitest/node';
import { findRedis, startRedis, type RedisConnection, type RedisServer } from './redis-server';

/** Either where Redis listens, or why there is none. */
export type RedisAvailability = { readonly connection: RedisConnection } | { readonly unavailable: string };

declare module 'vitest' {
  export interface ProvidedContext {
    redis: RedisAvailability;
  }
}

let server: RedisServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  const found = findRedis();
  if ('missing' in found) {
    if (process.env['POOL_LEAK_REQUIRE_REDIS'] === '1') throw new Error(`POOL_LEAK_REQUIRE_REDIS=1 but ${found.missing}`);
    const banner = '!'.repeat(78);
    console.warn(`${banner}\n[test setup] SKIPPING the node-redis suites: ${found.missing}\n${banner}`);
    project.provide('redis', { unavailable: found.missing });
    return;
  }
  server = await startRedis((line) => console.log(`[test setup] ${line}`));
  const { host, port, password } = server;
  project.provide('redis', { connection: { host, port, password } });
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
