import {
  ValueType,
  type Attributes,
  type BatchObservableResult,
  type Counter,
  type Histogram,
  type Meter,
  type ObservableUpDownCounter,
} from '@opentelemetry/api';
import { ATTR_CODE_FILE_PATH, ATTR_CODE_FUNCTION_NAME, ATTR_CODE_LINE_NUMBER } from '@opentelemetry/semantic-conventions';
import type { ExhaustionCause } from './exhaustion-cause';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_CLIENT_CONNECTION_STATE,
  ATTR_POOL_CALL_PATH,
  ATTR_POOL_EXHAUSTION_CAUSE,
} from './semconv';

/** A pool's own counters, read at metric collection. */
export interface PoolStats {
  readonly idle: number;
  readonly used: number;
  readonly pending: number;
  /** When the library knows it better than the description (e.g. after reconfiguration). */
  readonly max?: number | undefined;
}

/** The semconv pool instruments pool-leak reports; other instrumentations report some of them too. */
export const POOL_INSTRUMENTS = [
  'db.client.connection.count',
  'db.client.connection.max',
  'db.client.connection.pending_requests',
  'db.client.connection.timeouts',
  'db.client.connection.wait_time',
  'db.client.connection.use_time',
] as const;
export type PoolInstrumentName = (typeof POOL_INSTRUMENTS)[number];

/**
 * Which semconv pool instruments pool-leak reports: `auto` leaves to another instrumentation
 * those it already reports for a pool (one set of series per pool), `all` reports every one
 * regardless, `own` none (only pool-leak's own `pool.*` counters).
 */
export const POOL_METRICS_MODES = ['auto', 'all', 'own'] as const;
export type PoolMetricsMode = (typeof POOL_METRICS_MODES)[number];

const NOTHING_ELSEWHERE: ReadonlySet<string> = new Set();

/** A pool as the metrics see it: plain data and a reader of its counters (no lease, no span). */
export interface MeteredPool {
  /** `db.client.connection.pool.name`. */
  readonly poolName: string;
  /** The configured upper bound of connections, when the library exposes it. */
  readonly maxConnections: number | undefined;
  /** The pool's own counters, or undefined once the pool object is gone or cannot tell. */
  readStats(): PoolStats | undefined;
  /**
   * The semconv pool instruments another instrumentation already reports for this pool (e.g.
   * instrumentation-pg's gauges for a pg pool); asked until pool-leak reported the instrument
   * for this pool once. Absent: none.
   */
  reportedElsewhere?(): ReadonlySet<string>;
}

/**
 * Whether a gauge takes `value`: a count of connections or requests is a non-negative safe
 * integer. Anything else (negative, NaN, `1e308`, a string) is a broken probe, not a reading.
 */
export function isGaugeCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * What is wrong with a probe's counters (`"pending -7"`, `"used \"5\" (string)"`), or undefined
 * when every one is a count and `max` is a count, `Infinity` (unbounded) or absent.
 */
export function statsProblem(stats: unknown): string | undefined {
  if (typeof stats !== 'object' || stats === null) return `${typeof stats} instead of counters`;
  const counters = stats as Record<string, unknown>;
  for (const name of ['idle', 'used', 'pending'] as const) {
    const value = counters[name];
    if (!isGaugeCount(value)) return `${name} ${describeValue(value)}`;
  }
  const max = counters['max'];
  if (max === undefined || max === Number.POSITIVE_INFINITY || isGaugeCount(max)) return undefined;
  return `max ${describeValue(max)}`;
}

function describeValue(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return `${JSON.stringify(value.slice(0, 40))} (string)`;
  return `of type ${typeof value}`;
}

/** Semconv's suggested buckets for connection wait and use times, in seconds. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
/** The call-site value of metric points past the cardinality cap. */
export const OVERFLOW_FUNCTION_NAME = '_OTHER';

/** Attribute sets of one pool, built once per pool, and the instruments reported for it. */
interface PoolMetricAttributes {
  readonly pool: Attributes;
  readonly idle: Attributes;
  readonly used: Attributes;
  /**
   * Instruments pool-leak has reported for this pool: they stay ours. The SDK (through 3.x) keeps
   * exporting the last value of an observable series nobody observes any more, so handing a
   * series over later would leave a frozen copy beside the other instrumentation's live one.
   */
  readonly ours: Set<PoolInstrumentName>;
  /** The pool's name with each `pool.exhaustion.cause`, made on first use. */
  readonly byCause: Map<ExhaustionCause, Attributes>;
}

/**
 * The `db.client.connection.*` instruments (semconv, development status) and the
 * `pool.leak.suspected`, `pool.use.foreign_context` and `pool.wait.stalled` counters. Every point carries its own pool's name: two pools never share
 * a series. Observable values are read from each pool's own counters at collection time.
 */
export class PoolMetrics {
  private readonly waitTime: Histogram;
  private readonly useTime: Histogram;
  private readonly timeouts: Counter;
  private readonly leaks: Counter;
  private readonly foreignUses: Counter;
  private readonly stalls: Counter;
  private readonly count: ObservableUpDownCounter;
  private readonly max: ObservableUpDownCounter;
  private readonly pending: ObservableUpDownCounter;
  private readonly attributesByPool = new WeakMap<MeteredPool, PoolMetricAttributes>();
  private readonly callSites: CallSiteAttributes;

  constructor(
    meter: Meter,
    private readonly livePools: () => Iterable<MeteredPool>,
    maxCallSites: number,
    /** Where a pool probe that throws is reported (once per place, by the caller). */
    private readonly reportError: (where: string, error: unknown) => void = () => {},
    /** Read at every report: the configuration may change it (see {@link PoolMetricsMode}). */
    private readonly mode: () => PoolMetricsMode = () => 'auto',
  ) {
    this.callSites = new CallSiteAttributes(maxCallSites);
    this.waitTime = meter.createHistogram('db.client.connection.wait_time', {
      unit: 's',
      description: 'The time it took to obtain an open connection from the pool.',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.useTime = meter.createHistogram('db.client.connection.use_time', {
      unit: 's',
      description: 'The time between borrowing a connection and returning it to the pool.',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.timeouts = meter.createCounter('db.client.connection.timeouts', {
      unit: '{timeout}',
      description: 'The number of connection timeouts that have occurred trying to obtain a connection from the pool.',
      valueType: ValueType.INT,
    });
    this.leaks = meter.createCounter('pool.leak.suspected', {
      unit: '{lease}',
      description: 'Leases held longer than the leak threshold, by the call site that took them.',
      valueType: ValueType.INT,
    });
    this.foreignUses = meter.createCounter('pool.use.foreign_context', {
      unit: '{statement}',
      description: 'Statements run on a leased connection while another trace was active, by the call site that took the lease.',
      valueType: ValueType.INT,
    });
    this.stalls = meter.createCounter('pool.wait.stalled', {
      unit: '{checkout}',
      description: 'Checkouts still waiting after the wait threshold, by the call site that asked and pool.exhaustion.cause.',
      valueType: ValueType.INT,
    });
    this.count = meter.createObservableUpDownCounter('db.client.connection.count', {
      unit: '{connection}',
      description: 'The number of connections that are currently in the state described by the state attribute.',
      valueType: ValueType.INT,
    });
    this.max = meter.createObservableUpDownCounter('db.client.connection.max', {
      unit: '{connection}',
      description: 'The maximum number of open connections allowed.',
      valueType: ValueType.INT,
    });
    this.pending = meter.createObservableUpDownCounter('db.client.connection.pending_requests', {
      unit: '{request}',
      description: 'The number of current pending requests for an open connection.',
      valueType: ValueType.INT,
    });
    meter.addBatchObservableCallback((result) => this.observe(result), [this.count, this.max, this.pending]);
  }

  recordWait(pool: MeteredPool, seconds: number): void {
    const attributes = this.attributesOf(pool);
    if (this.reports(pool, attributes, 'db.client.connection.wait_time')) this.waitTime.record(seconds, attributes.pool);
  }

  recordUse(pool: MeteredPool, seconds: number): void {
    const attributes = this.attributesOf(pool);
    if (this.reports(pool, attributes, 'db.client.connection.use_time')) this.useTime.record(seconds, attributes.pool);
  }

  /** A checkout timed out; `cause` when the pool was exhausted (see `exhaustion-cause.ts`). */
  recordTimeout(pool: MeteredPool, cause?: ExhaustionCause): void {
    const attributes = this.attributesOf(pool);
    if (!this.reports(pool, attributes, 'db.client.connection.timeouts')) return;
    this.timeouts.add(1, cause === undefined ? attributes.pool : withCause(attributes.byCause, attributes.pool, cause));
  }

  /** A checkout waited past the wait threshold; `stack` is the one captured at its request. */
  recordWaitStalled(pool: MeteredPool, stack: CallPathOf | undefined, cause: ExhaustionCause): void {
    this.stalls.add(1, this.callSites.withCause(pool.poolName, stack, cause));
  }

  /**
   * Whether pool-leak reports `instrument` for `pool` now (see {@link PoolMetricsMode}): in
   * `auto`, unless another instrumentation reported it for this pool first.
   */
  private reports(pool: MeteredPool, attributes: PoolMetricAttributes, instrument: PoolInstrumentName): boolean {
    const mode = this.mode();
    if (mode !== 'auto') return mode === 'all';
    if (attributes.ours.has(instrument)) return true;
    let elsewhere = NOTHING_ELSEWHERE;
    try {
      elsewhere = pool.reportedElsewhere?.() ?? NOTHING_ELSEWHERE;
    } catch (error) {
      this.reportError('reportedElsewhere', error);
    }
    if (elsewhere.has(instrument)) return false;
    attributes.ours.add(instrument);
    return true;
  }

  /** A lease passed the leak threshold; `stack` is the one captured at its checkout. */
  recordLeak(pool: MeteredPool, stack: CallPathOf | undefined): void {
    this.leaks.add(1, this.callSites.of(pool.poolName, stack));
  }

  /** A statement ran on a lease from another trace; `stack` is the one captured at its checkout. */
  recordForeignUse(pool: MeteredPool, stack: CallPathOf | undefined): void {
    this.foreignUses.add(1, this.callSites.of(pool.poolName, stack));
  }

  private observe(result: BatchObservableResult): void {
    for (const pool of this.livePools()) {
      // One pool whose probe throws must not cost the others their points.
      let stats: PoolStats | undefined;
      try {
        stats = pool.readStats();
      } catch (error) {
        this.reportError('poolStats', error);
        continue;
      }
      // Gauges take counts only; the core's reader already turned a pool with garbage off.
      if (stats === undefined || statsProblem(stats) !== undefined) continue;
      const attributes = this.attributesOf(pool);
      if (this.reports(pool, attributes, 'db.client.connection.count')) {
        result.observe(this.count, stats.idle, attributes.idle);
        result.observe(this.count, stats.used, attributes.used);
      }
      if (this.reports(pool, attributes, 'db.client.connection.pending_requests')) result.observe(this.pending, stats.pending, attributes.pool);
      const max = stats.max ?? pool.maxConnections;
      if (isGaugeCount(max) && this.reports(pool, attributes, 'db.client.connection.max')) result.observe(this.max, max, attributes.pool);
    }
  }

  private attributesOf(pool: MeteredPool): PoolMetricAttributes {
    let attributes = this.attributesByPool.get(pool);
    if (attributes === undefined) {
      const name = { [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: pool.poolName };
      attributes = {
        pool: name,
        idle: { ...name, [ATTR_DB_CLIENT_CONNECTION_STATE]: 'idle' },
        used: { ...name, [ATTR_DB_CLIENT_CONNECTION_STATE]: 'used' },
        ours: new Set(),
        byCause: new Map(),
      };
      this.attributesByPool.set(pool, attributes);
    }
    return attributes;
  }
}

/** What the counters read of a checkout's stack: its call site and its call path. */
export interface CallPathOf {
  readonly callSite: { readonly functionName: string; readonly filePath: string; readonly line: number } | undefined;
  readonly callPath: string | undefined;
}

/**
 * Call-site attribute sets for counters, capped: the first `max` distinct call paths get their
 * own series, later ones share the `_OTHER` series of their pool, so cardinality stays bounded.
 * The call path is part of the series: two callers of one helper are two series.
 */
export class CallSiteAttributes {
  private readonly known = new Map<string, Attributes>();
  /** Call-site attribute sets with a `pool.exhaustion.cause` added, per set: at most four each. */
  private readonly causes = new WeakMap<Attributes, Map<ExhaustionCause, Attributes>>();

  constructor(private readonly max: number) {}

  of(poolName: string, stack: CallPathOf | undefined): Attributes {
    const callSite = stack?.callSite;
    // The call path names the call site (its first frame) and the callers after it: it is the key.
    const key = `${poolName}\u0000${stack?.callPath ?? ''}`;
    const known = this.known.get(key);
    if (known !== undefined) return known;
    if (this.known.size >= this.max || callSite === undefined) {
      return { [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolName, [ATTR_CODE_FUNCTION_NAME]: OVERFLOW_FUNCTION_NAME };
    }
    const attributes: Attributes = {
      [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolName,
      // Named by the stack capture, which names an anonymous function as spans and call paths do.
      [ATTR_CODE_FUNCTION_NAME]: callSite.functionName,
      [ATTR_CODE_FILE_PATH]: callSite.filePath,
      [ATTR_CODE_LINE_NUMBER]: callSite.line,
    };
    if (stack?.callPath !== undefined) attributes[ATTR_POOL_CALL_PATH] = stack.callPath;
    this.known.set(key, attributes);
    return attributes;
  }

  /** {@link CallSiteAttributes.of} with `pool.exhaustion.cause`: same cap, four times the series at most. */
  withCause(poolName: string, stack: CallPathOf | undefined, cause: ExhaustionCause): Attributes {
    const base = this.of(poolName, stack);
    let byCause = this.causes.get(base);
    if (byCause === undefined) {
      byCause = new Map();
      this.causes.set(base, byCause);
    }
    return withCause(byCause, base, cause);
  }
}

/** `base` with `pool.exhaustion.cause`, built once per cause and kept in `byCause`. */
function withCause(byCause: Map<ExhaustionCause, Attributes>, base: Attributes, cause: ExhaustionCause): Attributes {
  let attributes = byCause.get(cause);
  if (attributes === undefined) {
    attributes = { ...base, [ATTR_POOL_EXHAUSTION_CAUSE]: cause };
    byCause.set(cause, attributes);
  }
  return attributes;
}
