// Starts one real MariaDB for the whole test run, for the mysql2 and mariadb adapter suites.
// Without a server binary the suites are skipped with the reason printed loudly, unless
// POOL_LEAK_REQUIRE_MARIADB=1 (CI sets it): then a missing server fails the run.
import type { TestProject } from 'vitest/node';
import { findMariaDb, startMariaDb, type MariaDbConnection, type MariaDbServer } from './mariadb-server';

/** Either where MariaDB listens, or why there is none. */
export type MariaDbAvailability = { readonly connection: MariaDbConnection } | { readonly unavailable: string };

declare module 'vitest' {
  export interface ProvidedContext {
    mariadb: MariaDbAvailability;
  }
}

let server: MariaDbServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  const found = findMariaDb();
  if ('missing' in found) {
    if (process.env['POOL_LEAK_REQUIRE_MARIADB'] === '1') throw new Error(`POOL_LEAK_REQUIRE_MARIADB=1 but ${found.missing}`);
    const banner = '!'.repeat(78);
    console.warn(`${banner}\n[test setup] SKIPPING the mysql2 and mariadb suites: ${found.missing}\n${banner}`);
    project.provide('mariadb', { unavailable: found.missing });
    return;
  }
  server = await startMariaDb((line) => console.log(`[test setup] ${line}`));
  const { host, port, user, password, database } = server;
  project.provide('mariadb', { connection: { host, port, user, password, database } });
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
