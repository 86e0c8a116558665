import {
  context,
  diag,
  INVALID_SPAN_CONTEXT,
  isSpanContextValid,
  SpanKind,
  trace,
  type Context,
  type DiagLogger,
  type Meter,
  type Span,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { CallSiteCarrier } from './call-site-carrier';
import { FailureQueue, type FailedCheckout } from './failure-queue';
import { invalidReleaseAttributes, Lease, type InvalidReleaseReason, type LeaseHost } from './lease';
import { LeakSweeper, NO_LEAK_WATCH, type LeakWatch } from './leak-detector';
import { leaseStateAttributes } from './lease-state';
import { PoolMetrics } from './metrics';
import { ProviderShutdownHook } from './provider-shutdown';
import { ATTR_DB_SYSTEM_NAME } from '@opentelemetry/semantic-conventions';
import { ATTR_POOL_HELD_MS, ATTR_POOL_PENDING_AT_REQUEST, EVENT_POOL_RELEASE_INVALID } from './semconv';
import { NO_STACK_CAPTURE, type CapturedStack, type StackCapture } from './stack';
import { TrackedPool, type PoolDescription, type PoolStats } from './tracked-pool';

/** What can change with the configuration. */
export interface LeaseCoreSettings {
  readonly stackCapture: StackCapture;
  readonly checkinStackCapture: StackCapture;
  /** 0 = leak detection off. */
  readonly leakThresholdMs: number;
  readonly maxMetricCallSites: number;
  /** Append the holders to the message of a pool's own exhausted error (`poolHolders` is always set). */
  readonly enrichErrors: boolean;
}

export interface LeaseCoreOptions {
  /** The tracer to start checkout spans with; read on every checkout (it may be replaced). */
  readonly tracer: () => Tracer;
  /** The provider whose shutdown must first end open leases; read until one is hooked. */
  readonly tracerProvider: () => TracerProvider;
  readonly meter: Meter;
  readonly settings?: Partial<LeaseCoreSettings>;
  readonly diag?: DiagLogger;
}

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

/** Errors reported per place before that place goes quiet, so a broken hook cannot flood logs. */
const REPORTS_PER_PLACE = 1;
/** Pools kept for metric collection before dead ones are pruned on the next new pool. */
const PRUNE_POOLS_ABOVE = 64;

/**
 * The library-neutral heart of the instrumentation. Adapters describe their pools once and then
 * call {@link LeaseCore.checkout} at each acquire; the returned {@link Lease} takes the grant,
 * the checkin or the failure. The core knows nothing about any pool library.
 */
export class LeaseCore implements LeaseHost {
  private readonly pools = new WeakMap<object, TrackedPool>();
  /** Every tracked pool whose library object may still be alive, for metric collection. */
  private readonly observedPools = new Map<TrackedPool, WeakRef<object>>();
  /** Pools with at least one open lease; a pool without leases is not referenced from here. */
  private readonly busyPools = new Set<TrackedPool>();
  /**
   * The latest lease of each connection object that adapters handed in at the grant. Weak: the
   * entry (and the ended lease it may point to) goes with the connection.
   */
  private readonly leaseByConnection = new WeakMap<object, Lease>();
  private readonly shutdownHook = new ProviderShutdownHook({
    beforeShutdown: () => this.endOpenLeases(),
    beforeForceFlush: () => this.failures.flush(),
  });
  /**
   * Ends the leases of a pool object the application dropped: a waiter of a pool that will never
   * serve it (pg-pool after `end()`) would otherwise stay open, and keep its span, forever.
   */
  private readonly poolCollected = new FinalizationRegistry<TrackedPool>((pool) => this.poolGone(pool));
  private readonly reported = new Map<string, number>();
  /** Spans of failed checkouts, finished within a budget per turn when a pool fails many at once. */
  private readonly failures = new FailureQueue((where, error) => this.reportError(where, error));
  private readonly log: DiagLogger;
  private settings: LeaseCoreSettings;
  /** Set while the instrumentation is disabled: wrappers that stay in place start no lease. */
  private stopped = false;
  /**
   * Call sites carried from where a library built a query object to its checkout (thenable
   * query builders); a checkout made while one is active takes it instead of the live stack.
   */
  readonly callSites = new CallSiteCarrier((boundary) => this.captureCallSite(boundary));
  metrics: PoolMetrics;
  leakWatch: LeakWatch<Lease> = NO_LEAK_WATCH;

  constructor(private readonly options: LeaseCoreOptions) {
    this.log = options.diag ?? diag;
    this.settings = {
      stackCapture: NO_STACK_CAPTURE,
      checkinStackCapture: NO_STACK_CAPTURE,
      leakThresholdMs: 0,
      maxMetricCallSites: 100,
      enrichErrors: false,
      ...options.settings,
    };
    this.metrics = this.createMetrics(options.meter);
    this.leakWatch = this.createLeakWatch();
  }

  /**
   * Applies a new configuration. A new leak threshold applies to the leases already held too:
   * none of them is dropped from the watch, and none is reported twice.
   */
  configure(settings: LeaseCoreSettings): void {
    const previousThreshold = this.settings.leakThresholdMs;
    this.settings = settings;
    const threshold = settings.leakThresholdMs;
    if (threshold === previousThreshold) return;
    if (this.leakWatch instanceof LeakSweeper && threshold > 0) {
      this.leakWatch.setThreshold(threshold);
      return;
    }
    this.leakWatch.stop();
    this.leakWatch = this.createLeakWatch();
    if (threshold > 0 && !this.stopped) this.watchHeldLeases();
  }

  get enrichErrors(): boolean {
    return this.settings.enrichErrors;
  }

  /** Builds the instruments on a new meter (the meter provider changed). */
  setMeter(meter: Meter): void {
    this.metrics = this.createMetrics(meter);
  }

  /**
   * A checkout was requested on `pool`. Starts the checkout span as a child of the active
   * context and captures the caller's stack above `boundary` (the patched function, so its own
   * frames and those above it are left out) when the span records or leaks are watched.
   *
   * @returns undefined only if the instrumentation itself failed; the adapter then passes through.
   */
  checkout<P extends object>(pool: P, probe: PoolProbe<P>, boundary: Function): Lease | undefined {
    // Disabled, yet still called: our wrapper lies beneath another instrumentation's (patcher.ts).
    if (this.stopped) return undefined;
    try {
      this.shutdownHook.attach(this.options.tracerProvider());
      const tracked = this.trackPool(pool, probe);
      const callerContext = context.active();
      const pendingAhead = probe.pendingAhead?.(pool);
      // A request that queues starts its span when it is granted or fails (Lease.span).
      const span = pendingAhead === undefined ? this.startSpan(tracked, callerContext) : undefined;
      // Captured right here, not through a helper method: every frame between here and the
      // boundary is walked by the capture (~0.4 µs each on the CI machine). Unsampled leases
      // still need their call site when leaks are watched, for the counter; a queued one is
      // captured before its sampling decision, which comes at its grant.
      let stack = this.callSites.current(callerContext);
      if (stack === undefined && (span === undefined || span.isRecording() || this.settings.leakThresholdMs > 0)) {
        try {
          stack = this.settings.stackCapture.capture(boundary);
        } catch (error) {
          this.reportError('captureStack', error);
        }
      }
      if (span !== undefined && stack !== undefined && span.isRecording()) span.setAttributes(stack.attributes);
      const parent = trace.getSpanContext(callerContext);
      const ownerTraceId = parent !== undefined && isSpanContextValid(parent) ? parent.traceId : undefined;
      const lease = new Lease(this, tracked, span, callerContext, ownerTraceId, stack, pendingAhead);
      if (!tracked.hasOpenLeases) this.busyPools.add(tracked);
      tracked.waitingLeases.add(lease);
      return lease;
    } catch (error) {
      this.reportError('checkout', error);
      return undefined;
    }
  }

  /**
   * The application's stack above `boundary`, captured now for a checkout that a library will
   * make on its behalf further down (or later, see {@link LeaseCore.callSites}).
   */
  captureCallSite(boundary: Function): CapturedStack | undefined {
    return this.capture(this.settings.stackCapture, boundary);
  }

  /**
   * Runs `fn`; checkouts it starts synchronously take `callSite` as their stack and call site
   * instead of the live stack. For adapters whose library reaches its own acquire through
   * frames that would hide the caller; asynchronous carrying is {@link CallSiteCarrier.run}.
   */
  withCallSite<T>(callSite: CapturedStack | undefined, fn: () => T): T {
    return this.callSites.runSynchronously(callSite, fn);
  }

  /** The tracked pool for a library pool object, described on first sight only. */
  trackPool<P extends object>(pool: P, probe: PoolProbe<P>): TrackedPool {
    let tracked = this.pools.get(pool);
    if (tracked === undefined) {
      const ref = new WeakRef(pool);
      const stats = probe.stats;
      const isTimeout = probe.isTimeout;
      const isExhausted = probe.isExhausted;
      const dbSystemOf = probe.dbSystemOf;
      tracked = new TrackedPool(
        probe.describe(pool),
        stats === undefined ? undefined : () => readStats(ref, stats),
        isTimeout === undefined ? undefined : (error) => isTimeout(error),
        isExhausted === undefined ? undefined : (error) => isExhausted(error),
        dbSystemOf === undefined ? undefined : (connection) => dbSystemOf(connection),
      );
      this.pools.set(pool, tracked);
      this.poolCollected.register(pool, tracked);
      if (this.observedPools.size >= PRUNE_POOLS_ABOVE) this.pruneDeadPools();
      this.observedPools.set(tracked, ref);
    }
    return tracked;
  }

  /** Ends every open lease with ERROR status, and the failed ones still queued (the tracer provider is shutting down). */
  endOpenLeases(): void {
    this.failures.flush();
    this.endLeases(this.busyPools);
  }

  /**
   * The library ended `poolObject` (pg-pool's `end()`, node-redis's `destroy()`, postgres.js's
   * `sql.end()`): its checkouts still waiting will never be served nor failed by it, so they end
   * now with ERROR status. With `closedHeld`, the library also closed the connections it had
   * lent: their leases are checked in as destroyed. Without it, held ones stay until their
   * connection is released, which the library still accepts.
   */
  poolEnded(poolObject: object, boundary: Function, closedHeld = false): void {
    try {
      const pool = this.pools.get(poolObject);
      if (pool === undefined) return;
      for (const lease of pool.openLeases()) {
        if (!lease.isHeld) lease.endAtShutdown('pool ended with the checkout still waiting');
        else if (closedHeld) lease.checkin(true, boundary);
      }
    } catch (error) {
      this.reportError('poolEnded', error);
    }
  }

  startQueuedSpan(lease: Lease): Span {
    try {
      const span = this.startSpan(lease.pool, lease.callerContext, lease.requestedAt);
      if (span.isRecording()) {
        if (lease.stack !== undefined) span.setAttributes(lease.stack.attributes);
        if (lease.pendingAtRequest !== undefined) span.setAttribute(ATTR_POOL_PENDING_AT_REQUEST, lease.pendingAtRequest);
      }
      return span;
    } catch (error) {
      this.reportError('startQueuedSpan', error);
      return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    }
  }

  /** A checkout span, child of the caller's context, with the pool's attributes for the sampler. */
  private startSpan(pool: TrackedPool, callerContext: Context, startTime?: number): Span {
    return this.options.tracer().startSpan(pool.spanName, { kind: SpanKind.INTERNAL, attributes: pool.attributes, startTime }, callerContext);
  }

  finishFailure(failure: FailedCheckout): void {
    this.failures.finish(failure);
  }

  /** Failed checkouts whose spans wait for a later turn of the loop (tests and diagnostics). */
  get queuedFailureCount(): number {
    return this.failures.size;
  }

  /** A granted lease is a holder of its pool, and is watched for leaks. */
  leaseGranted(lease: Lease): void {
    const pool = lease.pool;
    pool.waitingLeases.delete(lease);
    pool.heldLeases.add(lease);
    pool.holdersVersion++;
    this.leakWatch.watch(lease);
  }

  /** Number of open leases across all pools (tests and diagnostics). */
  get openLeaseCount(): number {
    let count = 0;
    for (const pool of this.busyPools) count += pool.waitingLeases.size + pool.heldLeases.size;
    return count;
  }

  /**
   * On disable: ends every open lease (its release or grant may now bypass the unpatched library
   * functions, so it could only misreport later), stops the leak timer and restores the tracer
   * provider's shutdown.
   */
  stop(): void {
    this.stopped = true;
    this.failures.flush();
    this.endLeases(this.busyPools, 'instrumentation disabled with the lease open');
    this.leakWatch.stop();
    this.shutdownHook.detachAll();
  }

  /** Starts leases again after {@link LeaseCore.stop} (the instrumentation was enabled again). */
  start(): void {
    this.stopped = false;
  }

  bindConnection(connection: unknown, lease: Lease): void {
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

  /**
   * The latest lease granted `connection` (it may have ended), if the instrumentation saw one.
   * A resource that is not an object is found only while its lease is open, and only with the
   * library's pool object it was lent by.
   */
  leaseOf(connection: unknown, poolObject?: object): Lease | undefined {
    if (isObject(connection)) return this.leaseByConnection.get(connection);
    const pool = poolObject === undefined ? undefined : this.pools.get(poolObject);
    return pool?.leasesByPrimitive.get(connection);
  }

  /**
   * For libraries that release by connection object: checks the connection's lease in, or
   * records an invalid release when that lease already ended. A connection the instrumentation
   * never granted (taken before it was enabled) is left alone. Pass the library's pool object
   * for pools that lend values that are not objects, and a {@link ReleasePolicy} where the
   * library can tell a foreign resource or releases resources itself: one lookup decides.
   */
  releaseConnection(connection: unknown, destroyed: boolean, boundary: Function, poolObject?: object, policy?: ReleasePolicy): void {
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

  /**
   * A statement is about to run on `connection` (see {@link Lease.statementIssued}); `statement`
   * is what the library was given (SQL text, or a query object with `text` or `sql`).
   *
   * @returns the lease holding the connection, whose {@link Lease.statementSettled} the adapter
   * calls when this statement finishes; undefined when no held lease has the connection.
   */
  statementIssued(connection: object, boundary: Function, statement?: unknown): Lease | undefined {
    const lease = this.leaseByConnection.get(connection);
    return lease !== undefined && lease.statementIssued(boundary, statement) ? lease : undefined;
  }

  forget(lease: Lease): void {
    this.leakWatch.unwatch(lease);
    const pool = lease.pool;
    const connection = lease.connection;
    if (connection !== undefined && !isObject(connection) && pool.leasesByPrimitive.get(connection) === lease) {
      pool.leasesByPrimitive.delete(connection);
    }
    if (pool.heldLeases.delete(lease)) pool.holdersVersion++;
    else pool.waitingLeases.delete(lease);
    if (!pool.hasOpenLeases) this.busyPools.delete(pool);
  }

  captureCheckinStack(boundary: Function): CapturedStack | undefined {
    return this.capture(this.settings.checkinStackCapture, boundary);
  }

  /**
   * The lease span has ended, so the event goes where the mistake happens: the span active at
   * the invalid release, or, with none recording, a zero-length `<library> release.invalid`
   * span linked to the checkout span.
   */
  reportInvalidRelease(lease: Lease, reason: InvalidReleaseReason, stack: CapturedStack | undefined): void {
    const attributes = invalidReleaseAttributes(reason, stack);
    const active = trace.getActiveSpan();
    if (active !== undefined && active.isRecording()) {
      active.addEvent(EVENT_POOL_RELEASE_INVALID, attributes);
      return;
    }
    const span = this.options.tracer().startSpan(`${lease.pool.description.library} release.invalid`, {
      kind: SpanKind.INTERNAL,
      attributes: lease.pool.attributes,
      links: [{ context: lease.span.spanContext() }],
    });
    span.addEvent(EVENT_POOL_RELEASE_INVALID, attributes);
    span.end();
  }

  reportError(where: string, error: unknown): void {
    const count = this.reported.get(where) ?? 0;
    if (count >= REPORTS_PER_PLACE) return;
    this.reported.set(where, count + 1);
    this.log.error(`pool-leak: internal error in ${where}; the application is not affected`, error);
  }

  /** Pools whose library object is still alive. */
  private *livePools(): Iterable<TrackedPool> {
    for (const [pool, ref] of this.observedPools) {
      if (ref.deref() === undefined) this.observedPools.delete(pool);
      else yield pool;
    }
  }

  private endLeases(pools: Iterable<TrackedPool>, reason?: string): void {
    for (const pool of [...pools]) {
      for (const lease of pool.openLeases()) lease.endAtShutdown(reason);
    }
  }

  /** The library's pool object was collected: its leases can never be served or checked in. */
  private poolGone(pool: TrackedPool): void {
    try {
      this.observedPools.delete(pool);
      this.endLeases([pool], 'pool object garbage-collected with the lease open');
    } catch (error) {
      this.reportError('poolGone', error);
    }
  }

  /** Watches every held lease not yet reported, oldest grant first (detection turned on). */
  private watchHeldLeases(): void {
    const held: Lease[] = [];
    for (const pool of this.busyPools) for (const lease of pool.heldLeases) if (!lease.leakSuspected) held.push(lease);
    held.sort((a, b) => a.grantedAt - b.grantedAt);
    for (const lease of held) this.leakWatch.watch(lease);
  }

  private pruneDeadPools(): void {
    for (const [pool, ref] of this.observedPools) if (ref.deref() === undefined) this.observedPools.delete(pool);
  }

  private createMetrics(meter: Meter): PoolMetrics {
    return new PoolMetrics(meter, () => this.livePools(), this.settings.maxMetricCallSites, (where, error) =>
      this.reportError(where, error),
    );
  }

  private createLeakWatch(): LeakWatch<Lease> {
    const threshold = this.settings.leakThresholdMs;
    return threshold > 0 ? new LeakSweeper<Lease>(threshold, (lease, heldMs) => this.reportLeak(lease, heldMs)) : NO_LEAK_WATCH;
  }

  /**
   * A lease passed the threshold: an event on its checkout span, the call-site counter, and a
   * short `<library> leak` span ended at once, because the checkout span of a connection that
   * never comes back never ends, and Jaeger would show nothing.
   */
  private reportLeak(lease: Lease, heldMs: number): void {
    try {
      const stateAttributes = leaseStateAttributes(lease.activityAt());
      lease.markLeakSuspected(heldMs, stateAttributes);
      this.metrics.recordLeak(lease.pool, lease.stack);
      const leakSpan = this.options.tracer().startSpan(
        `${lease.pool.description.library} leak`,
        {
          kind: SpanKind.INTERNAL,
          attributes: { ...lease.pool.attributes, ...lease.stack?.attributes, [ATTR_POOL_HELD_MS]: heldMs, ...stateAttributes },
          links: [{ context: lease.span.spanContext() }],
        },
        lease.callerContext,
      );
      leakSpan.end();
    } catch (error) {
      this.reportError('reportLeak', error);
    }
  }

  private capture(capture: StackCapture, boundary: Function): CapturedStack | undefined {
    try {
      return capture.capture(boundary);
    } catch (error) {
      this.reportError('captureStack', error);
      return undefined;
    }
  }
}

function isObject(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

function readStats<P extends object>(ref: WeakRef<P>, stats: (pool: P) => PoolStats | undefined): PoolStats | undefined {
  const pool = ref.deref();
  return pool === undefined ? undefined : stats(pool);
}
