import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_DB_NAMESPACE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
} from '@opentelemetry/semantic-conventions';
import { ATTR_DB_CLIENT_CONNECTION_POOL_NAME, ATTR_POOL_LIBRARY } from '../signals/semconv';
import type { MeteredPool, PoolStats } from '../signals/metrics';
import { LeaseQueue, type Queued } from './lease-queue';

export type { PoolStats };

/**
 * What an adapter can say about a pool. Everything but `library` is optional; credentials and
 * connection strings never belong here.
 */
export interface PoolDescription {
  /** The adapter's name for its library (`pool.library`, the span name's prefix). */
  readonly library: string;
  /** Semconv `db.system.name`, e.g. `postgresql`. */
  readonly dbSystem?: string | undefined;
  readonly serverAddress?: string | undefined;
  readonly serverPort?: number | undefined;
  /** Semconv `db.namespace` (the database name). */
  readonly namespace?: string | undefined;
  /** The pool's own name, when the library lets users name pools. */
  readonly name?: string | undefined;
  /** Upper bound of connections, when the library exposes it. */
  readonly maxConnections?: number | undefined;
}

const NOTHING_ELSEWHERE: ReadonlySet<string> = new Set();

/**
 * A pool the instrumentation has seen: its fixed span attributes and its open leases. Generic in
 * the lease type so that this module knows nothing of leases beyond holding them.
 */
export class TrackedPool<L extends Queued = Queued> implements MeteredPool {
  readonly spanName: string;
  /** Built once per pool (again if the server names another `db.system.name`), shared by its spans. */
  attributes: Readonly<Attributes>;
  readonly poolName: string;
  /**
   * Leases requested and not yet granted nor ended, in request order; the stall sweep walks it.
   * A lease is in this queue or in {@link TrackedPool.heldLeases} while open, never in both.
   */
  readonly waitingLeases = new LeaseQueue<L>();
  /**
   * The granted leases not yet ended, in grant order (longest held first): the holders are named
   * from here without walking the leases still waiting, and the leak sweep walks it.
   */
  readonly heldLeases = new LeaseQueue<L>();
  /**
   * Open leases of granted resources that are not objects (a pool may lend numbers), which a
   * WeakMap cannot key; entries go when their lease ends.
   */
  readonly leasesByPrimitive = new Map<unknown, L>();
  /** Leases requested and not yet ended: waiting ones first, then held ones in grant order. */
  openLeases(): L[] {
    return [...this.waitingLeases, ...this.heldLeases];
  }

  /** Whether any lease is open. */
  get hasOpenLeases(): boolean {
    return this.waitingLeases.size > 0 || this.heldLeases.size > 0;
  }

  /** `lease` was granted: it moves from the waiting checkouts to the holders. */
  holdLease(lease: L): void {
    this.waitingLeases.remove(lease);
    this.heldLeases.append(lease);
    this.holdersVersion++;
  }

  /** `lease` ended, granted or not; a holder's end is a checkin (the pool turned over at `now`). */
  dropLease(lease: L, now = performance.now()): void {
    if (this.heldLeases.remove(lease)) {
      this.holdersVersion++;
      this.lastCheckinAt = now;
    } else this.waitingLeases.remove(lease);
  }

  /** True until the first granted connection was asked for its server's `db.system.name`. */
  awaitsServerDbSystem: boolean;

  /** The configured upper bound of connections, when the adapter could tell. */
  get maxConnections(): number | undefined {
    return this.description.maxConnections;
  }
  /**
   * Bumped whenever what the holders list tells may change: a grant, a checkin, a statement
   * starting or ending, a transaction opening or closing on a held connection.
   */
  holdersVersion = 0;
  /**
   * Why this pool's `db.client.connection.*` gauges are off: its probe threw or answered
   * something that is no count (see `pool-probe.ts`). Undefined while they are on. Its spans and
   * every other signal go on either way.
   */
  gaugesOffBecause: string | undefined;
  /** The semconv pool instruments another instrumentation reports for this pool (see `pool-probe.ts`). */
  reportedElsewhere: () => ReadonlySet<string> = () => NOTHING_ELSEWHERE;
  /** `performance.now()` at the last checkin of a held lease: did the pool turn over during a wait? */
  lastCheckinAt = 0;

  constructor(
    readonly description: PoolDescription,
    /** The pool's own counters, or undefined once the pool object is gone or cannot tell. */
    readonly readStats: () => PoolStats | undefined = () => undefined,
    /** Whether a checkout error is the library's "no connection in time" error. */
    readonly isTimeout: (error: unknown) => boolean = () => false,
    /** Whether a checkout error means the pool had no connection to give (timeouts included). */
    readonly isExhausted: (error: unknown) => boolean = isTimeout,
    /** `db.system.name` as a granted connection's server reports it; asked once. */
    private readonly dbSystemOf?: (connection: object) => string | undefined,
  ) {
    this.spanName = `${description.library} checkout`;
    this.poolName = poolNameOf(description);
    this.awaitsServerDbSystem = dbSystemOf !== undefined;
    this.attributes = spanAttributesOf(description, this.poolName, description.dbSystem);
  }

  /**
   * Asks a granted connection which database system it talks to, once per pool.
   *
   * @returns the new `db.system.name` when it differs from the described one, else undefined.
   */
  learnDbSystem(connection: object): string | undefined {
    this.awaitsServerDbSystem = false;
    let learned: unknown;
    try {
      learned = this.dbSystemOf?.(connection);
    } catch {
      // A probe that cannot tell keeps the described system; the grant (and its span) goes on.
      return undefined;
    }
    if (typeof learned !== 'string') return undefined;
    if (learned === this.attributes[ATTR_DB_SYSTEM_NAME]) return undefined;
    this.attributes = spanAttributesOf(this.description, this.poolName, learned);
    return learned;
  }
}

function spanAttributesOf(description: PoolDescription, poolName: string, dbSystem: string | undefined): Readonly<Attributes> {
  const attributes: Attributes = {
    [ATTR_POOL_LIBRARY]: description.library,
    [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolName,
  };
  if (dbSystem !== undefined) attributes[ATTR_DB_SYSTEM_NAME] = dbSystem;
  if (description.serverAddress !== undefined) attributes[ATTR_SERVER_ADDRESS] = description.serverAddress;
  if (description.serverPort !== undefined) attributes[ATTR_SERVER_PORT] = description.serverPort;
  if (description.namespace !== undefined) attributes[ATTR_DB_NAMESPACE] = description.namespace;
  return Object.freeze(attributes);
}

/**
 * The pool's own name, else semconv's fallback `server.address:server.port/db.namespace`, else
 * the library name (an in-memory generic pool has no server).
 */
export function poolNameOf(description: PoolDescription): string {
  if (description.name !== undefined && description.name !== '') return description.name;
  if (description.serverAddress === undefined) return description.library;
  const port = description.serverPort === undefined ? '' : `:${description.serverPort}`;
  const namespace = description.namespace === undefined || description.namespace === '' ? '' : `/${description.namespace}`;
  return `${description.serverAddress}${port}${namespace}`;
}
