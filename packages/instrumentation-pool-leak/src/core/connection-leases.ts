import { ATTR_DB_SYSTEM_NAME } from '@opentelemetry/semantic-conventions';
import type { Lease } from './lease';
import type { ReleasePolicy } from './pool-probe';
import type { PoolRegistry } from './pool-registry';

/**
 * Finds a lease again from the connection a library hands back at release or at a statement:
 * the latest lease of each connection object, kept weakly (the entry, and the ended lease it
 * may point to, goes with the connection), and per pool the open leases of resources that are
 * not objects.
 */
export class ConnectionLeases {
  private readonly leaseByConnection = new WeakMap<object, Lease>();

  constructor(private readonly registry: PoolRegistry) {}

  /** Remembers that `lease` was granted `connection`; the first grant of a pool learns its server. */
  bind(connection: unknown, lease: Lease): void {
    const pool = lease.pool;
    if (!isObject(connection)) {
      pool.leasesByPrimitive.set(connection, lease);
      return;
    }
    this.leaseByConnection.set(connection, lease);
    if (pool.awaitsServerDbSystem) {
      const learned = pool.learnDbSystem(connection);
      if (learned !== undefined) lease.span.setAttribute(ATTR_DB_SYSTEM_NAME, learned);
    }
  }

  /** Drops a primitive resource's entry when its lease ends (object entries go with the object). */
  unbind(lease: Lease): void {
    const connection = lease.connection;
    const byPrimitive = lease.pool.leasesByPrimitive;
    if (connection !== undefined && !isObject(connection) && byPrimitive.get(connection) === lease) byPrimitive.delete(connection);
  }

  /**
   * The latest lease granted `connection` (it may have ended), if the instrumentation saw one.
   * A resource that is not an object is found only while its lease is open, and only with the
   * library's pool object it was lent by.
   */
  leaseOf(connection: unknown, poolObject?: object): Lease | undefined {
    if (isObject(connection)) return this.leaseByConnection.get(connection);
    const pool = poolObject === undefined ? undefined : this.registry.get(poolObject);
    return pool?.leasesByPrimitive.get(connection);
  }

  /**
   * Checks the connection's lease in, or records an invalid release when that lease already
   * ended; a connection never granted under the instrumentation is left alone. One lookup
   * decides, with the library's {@link ReleasePolicy} where it can tell more.
   */
  release(connection: unknown, destroyed: boolean, boundary: Function, poolObject?: object, policy?: ReleasePolicy): void {
    const lease = this.leaseOf(connection, poolObject);
    if (lease === undefined) return;
    if (lease.isHeld) {
      // Held, but lent by another pool: this pool refuses it and the lease stays held.
      const lent = policy?.lent;
      if (lent !== undefined && poolObject !== undefined && !lent(poolObject, connection)) lease.invalidRelease('foreign', boundary);
      else lease.checkin(destroyed, boundary);
    }
    // A release after the provider shut down is the lease's own, late: nothing to report.
    else if (policy?.onlyHeld !== true && !lease.isOpen && !lease.endedAtProviderShutdown) {
      lease.invalidRelease(lease.endedByDestroy ? 'destroyed' : 'double_release', boundary);
    }
  }

  /** The held lease of `connection` that took the statement, else undefined. */
  statementIssued(connection: object, boundary: Function, statement?: unknown): Lease | undefined {
    const lease = this.leaseByConnection.get(connection);
    return lease !== undefined && lease.statementIssued(boundary, statement) ? lease : undefined;
  }
}

function isObject(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}
