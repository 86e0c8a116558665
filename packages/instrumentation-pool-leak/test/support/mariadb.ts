// The real MariaDB the global setup started (test/setup/mariadb.ts), for mysql2 and mariadb.
import { describe, inject } from 'vitest';
import type { MariaDbConnection } from '../../../../test/setup/mariadb-server';

/** Connection settings, or undefined when this machine has no MariaDB server binary. */
export function mariadbConfig(): MariaDbConnection | undefined {
  const availability = inject('mariadb');
  return 'connection' in availability ? availability.connection : undefined;
}

/** Connection settings; throws when there is no server (call inside a {@link describeWithMariaDb}). */
export function requireMariaDbConfig(): MariaDbConnection {
  const config = mariadbConfig();
  if (config === undefined) throw new Error('no MariaDB server in this test run');
  return config;
}

/**
 * `describe`, skipped with the reason in its title when there is no MariaDB server; the global
 * setup prints the same reason in a banner, and CI (POOL_LEAK_REQUIRE_MARIADB=1) never skips.
 */
export function describeWithMariaDb(name: string, body: () => void): void {
  const availability = inject('mariadb');
  if ('unavailable' in availability) describe.skip(`${name} [SKIPPED: ${availability.unavailable}]`, body);
  else describe(name, body);
}
