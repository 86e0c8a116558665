import type { PoolStats } from '../signals/metrics';
import type { PoolDescription } from './tracked-pool';

/**
 * How the core reads a library's pool object. Adapters define one probe per library, once, so
 * a checkout allocates nothing for it.
 */
export interface PoolProbe<P extends object> {
  /** Called once per pool object. Never return credentials or connection strings. */
  describe(pool: P): PoolDescription;
  /** Waiters queued ahead of a new request that cannot be served at once, else undefined. */
  pendingAhead?(pool: P): number | undefined;
  /** The pool's own counters, for the `db.client.connection.*` observable metrics. */
  stats?(pool: P): PoolStats | undefined;
  /** Whether a checkout error means "no connection became free in time". */
  isTimeout?(error: unknown): boolean;
  /**
   * Whether a checkout error means the pool had nothing to give: timeouts, and rejections such
   * as a full wait queue. Defaults to {@link PoolProbe.isTimeout}. The failing checkout span
   * then names the current holders.
   */
  isExhausted?(error: unknown): boolean;
  /**
   * `db.system.name` as the server of a granted connection reports it, when the pool options
   * cannot tell (mysql2 talking to MariaDB). Asked once per pool, at its first grant.
   */
  dbSystemOf?(connection: object): string | undefined;
}

/** How a library's release point is read, beyond "held → checkin, ended → invalid release". */
export interface ReleasePolicy {
  /** Whether `pool` lent `connection` (asked only while its lease is held); false → `foreign`. */
  readonly lent?: (pool: object, connection: unknown) => boolean;
  /** The pool also releases resources itself (idle reaping): a lease that ended is no mistake. */
  readonly onlyHeld?: boolean;
}
