import { statsProblem, isGaugeCount, type PoolStats } from '../signals/metrics';
import type { PoolDescription, TrackedPool } from './tracked-pool';

/**
 * How the core reads a library's pool object. Adapters define one probe per library, once, so
 * a checkout allocates nothing for it.
 */
export interface PoolProbe<P extends object> {
  /**
   * The adapter's name for its library (`pool.library`): what the pool is called when
   * {@link PoolProbe.describe} throws, so that its checkouts still get their spans. Every
   * adapter sets it; a probe without it (a test's) falls back to {@link UNDESCRIBED_LIBRARY}.
   */
  readonly library?: string;
  /** Called once per pool object. Never return credentials or connection strings. */
  describe(pool: P): PoolDescription;
  /** Waiters queued ahead of a new request that cannot be served at once, else undefined. */
  pendingAhead?(pool: P): number | undefined;
  /** The pool's own counters, for the `db.client.connection.*` observable metrics. */
  stats?(pool: P): PoolStats | undefined;
  /**
   * The semconv pool instruments (`db.client.connection.*`) another instrumentation already
   * reports for this pool object, e.g. instrumentation-pg's gauges for a pg pool it has patched.
   * Asked at metric collection and recording, until pool-leak reported the instrument once;
   * what it answered once is remembered (those reporters never stop).
   */
  reportedElsewhere?(pool: P): ReadonlySet<string> | undefined;
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

/**
 * Told once per pool when its probe threw or returned garbage: `why` names the probe and what it
 * did. The pool's gauges are off from then on; its spans are not touched.
 */
export type ProbeFaultReport = (pool: TrackedPool, why: string) => void;

/**
 * A probe fault turns the pool's gauges off for good, and is told once per pool: a library whose
 * getters throw keeps throwing, and a collection every few seconds must not repeat the line.
 */
export function gaugesOff(pool: TrackedPool, why: string, report: ProbeFaultReport): void {
  if (pool.gaugesOffBecause !== undefined) return;
  pool.gaugesOffBecause = why;
  report(pool, why);
}

/** The library name of a pool whose probe has no `library` and whose `describe` threw. */
export const UNDESCRIBED_LIBRARY = 'pool';

/** The diag line of a pool whose probe failed: which pool, what broke, and what is lost. */
export function probeFaultLine(pool: TrackedPool, why: string): string {
  return `pool-leak: pool "${pool.poolName}" (${pool.description.library}): its probe ${why}; its db.client.connection.* gauges are off for this pool, its spans and counters go on`;
}

/** What `describe` did wrong, or undefined: a throw, or a `maxConnections` that is no count. */
export type DescriptionFault = string | undefined;

/**
 * The pool's description, never throwing: when `describe` throws, the pool is known by its
 * library's name alone, and a `maxConnections` that is no count (nor `Infinity`, "unbounded")
 * is left out. The second element says what went wrong, for {@link gaugesOff}.
 */
export function describedBy<P extends object>(probe: PoolProbe<P>, pool: P): [PoolDescription, DescriptionFault] {
  let description: PoolDescription;
  try {
    description = probe.describe(pool);
  } catch (error) {
    return [{ library: probe.library ?? UNDESCRIBED_LIBRARY }, `describe threw ${errorText(error)}`];
  }
  const max: unknown = description.maxConnections;
  if (max === undefined || max === Number.POSITIVE_INFINITY || isGaugeCount(max)) return [description, undefined];
  return [{ ...description, maxConnections: undefined }, `describe returned maxConnections ${valueText(max)}`];
}

/**
 * The waiters ahead of a new checkout, or undefined (the span then starts at once): also when the
 * probe throws or answers no count, which turns the pool's gauges off, and from then on without
 * asking the probe again (a throw per checkout would cost every checkout).
 */
export function pendingAheadOf<P extends object>(probe: PoolProbe<P>, poolObject: P, pool: TrackedPool, report: ProbeFaultReport): number | undefined {
  if (probe.pendingAhead === undefined || pool.gaugesOffBecause !== undefined) return undefined;
  let pending: unknown;
  try {
    pending = probe.pendingAhead(poolObject);
  } catch (error) {
    gaugesOff(pool, `pendingAhead threw ${errorText(error)}`, report);
    return undefined;
  }
  if (pending === undefined || isGaugeCount(pending)) return pending;
  gaugesOff(pool, `pendingAhead returned ${valueText(pending)}`, report);
  return undefined;
}

/**
 * The pool's counters for the gauges, read from the library object while it lives: undefined
 * once the object is gone or the gauges are off. A throw or an answer that is not a set of counts
 * turns them off (see {@link statsProblem}).
 */
export function guardedStatsReader<P extends object>(
  stats: (pool: P) => PoolStats | undefined,
  ref: WeakRef<P>,
  pool: () => TrackedPool,
  report: ProbeFaultReport,
): () => PoolStats | undefined {
  return () => {
    const tracked = pool();
    if (tracked.gaugesOffBecause !== undefined) return undefined;
    const poolObject = ref.deref();
    if (poolObject === undefined) return undefined;
    let read: unknown;
    try {
      read = stats(poolObject);
    } catch (error) {
      gaugesOff(tracked, `stats threw ${errorText(error)}`, report);
      return undefined;
    }
    if (read === undefined) return undefined;
    const problem = statsProblem(read);
    if (problem === undefined) return read as PoolStats;
    gaugesOff(tracked, `stats returned ${problem}`, report);
    return undefined;
  };
}

/**
 * {@link PoolProbe.reportedElsewhere} for one pool, never throwing (a throw counts as "nothing
 * elsewhere" and goes to `onError` once per place), and growing only: an instrument once
 * reported elsewhere stays there, without asking the pool again.
 */
export function elsewhereReader<P extends object>(
  probe: (pool: P) => ReadonlySet<string> | undefined,
  ref: WeakRef<P>,
  onError: (where: string, error: unknown) => void,
): () => ReadonlySet<string> {
  const known = new Set<string>();
  return () => {
    const poolObject = ref.deref();
    if (poolObject === undefined) return known;
    try {
      const answer = probe(poolObject);
      if (answer !== undefined) for (const name of answer) known.add(name);
    } catch (error) {
      onError('reportedElsewhere', error);
    }
    return known;
  };
}

/** Characters of a probe's error or value kept in the diag line. */
const MAX_FAULT_CHARS = 120;

function errorText(error: unknown): string {
  try {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : `a non-error (${String(error)})`;
    return text.slice(0, MAX_FAULT_CHARS);
  } catch {
    return 'an unprintable value';
  }
}

function valueText(value: unknown): string {
  try {
    return (typeof value === 'string' ? JSON.stringify(value) : `${String(value)} (${typeof value})`).slice(0, MAX_FAULT_CHARS);
  } catch {
    return 'an unprintable value';
  }
}
