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
import { ATTR_DB_CLIENT_CONNECTION_POOL_NAME, ATTR_DB_CLIENT_CONNECTION_STATE, ATTR_POOL_CALL_PATH } from './semconv';

/** A pool's own counters, read at metric collection. */
export interface PoolStats {
  readonly idle: number;
  readonly used: number;
  readonly pending: number;
  /** When the library knows it better than the description (e.g. after reconfiguration). */
  readonly max?: number | undefined;
}

/** A pool as the metrics see it: plain data and a reader of its counters (no lease, no span). */
export interface MeteredPool {
  /** `db.client.connection.pool.name`. */
  readonly poolName: string;
  /** The configured upper bound of connections, when the library exposes it. */
  readonly maxConnections: number | undefined;
  /** The pool's own counters, or undefined once the pool object is gone or cannot tell. */
  readStats(): PoolStats | undefined;
}

/** Semconv's suggested buckets for connection wait and use times, in seconds. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
/** The call-site value of metric points past the cardinality cap. */
export const OVERFLOW_FUNCTION_NAME = '_OTHER';

/** Attribute sets of one pool, built once per pool. */
interface PoolMetricAttributes {
  readonly pool: Attributes;
  readonly idle: Attributes;
  readonly used: Attributes;
}

/**
 * The `db.client.connection.*` instruments (semconv, development status) and the
 * `pool.leak.suspected` and `pool.use.foreign_context` counters. Every point carries its own pool's name: two pools never share
 * a series. Observable values are read from each pool's own counters at collection time.
 */
export class PoolMetrics {
  private readonly waitTime: Histogram;
  private readonly useTime: Histogram;
  private readonly timeouts: Counter;
  private readonly leaks: Counter;
  private readonly foreignUses: Counter;
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
    this.waitTime.record(seconds, this.attributesOf(pool).pool);
  }

  recordUse(pool: MeteredPool, seconds: number): void {
    this.useTime.record(seconds, this.attributesOf(pool).pool);
  }

  recordTimeout(pool: MeteredPool): void {
    this.timeouts.add(1, this.attributesOf(pool).pool);
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
      if (stats === undefined) continue;
      const attributes = this.attributesOf(pool);
      result.observe(this.count, stats.idle, attributes.idle);
      result.observe(this.count, stats.used, attributes.used);
      result.observe(this.pending, stats.pending, attributes.pool);
      const max = stats.max ?? pool.maxConnections;
      if (max !== undefined && Number.isFinite(max)) result.observe(this.max, max, attributes.pool);
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
}
