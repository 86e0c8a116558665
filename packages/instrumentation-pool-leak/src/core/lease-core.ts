import { context, diag, INVALID_SPAN_CONTEXT, SpanKind, trace, type Context, type HrTime, type Meter, type Span, type Tracer } from '@opentelemetry/api';
import { CallSiteCarrier } from '../call-site/call-site-carrier';
import { resolveStack, type CapturedStack, type HeldStack, type StackCapture } from '../call-site/stack';
import { PoolMetrics } from '../signals/metrics';
import { ATTR_POOL_PENDING_AT_REQUEST } from '../signals/semconv';
import { CallerContext, CallerContextLoosener } from './caller-context';
import type { LeaseQueue } from './lease-queue';
import { ConnectionLeases } from './connection-leases';
import { CORE_SETTINGS_UNSET, type LeaseCoreOptions, type LeaseCoreSettings } from './lease-core-options';
import { ErrorReports } from './error-reports';
import { FailureQueue, type FailedCheckout } from './failure-queue';
import { reportLateInvalidRelease, type InvalidReleaseReason } from './invalid-release';
import { NO_LEAK_WATCH, type LeakWatch } from './leak-detector';
import { leakWatchFor, reportLeak, rewatch } from './leak-reports';
import { Lease, type LeaseHost, type LeasePool } from './lease';
import { pendingAheadOf, probeFaultLine, type PoolProbe, type ProbeFaultReport, type ReleasePolicy } from './pool-probe';
import { PoolRegistry } from './pool-registry';
import { ProviderShutdownHook } from './provider-shutdown';
import { SpanClock } from './span-clock';
import { WaitStalls } from './wait-stall-reports';

export type { LeaseCoreOptions, LeaseCoreSettings };

export type { PoolProbe, ReleasePolicy };

/**
 * The library-neutral heart of the instrumentation. Adapters describe their pools once and then
 * call {@link LeaseCore.checkout} at each acquire; the returned {@link Lease} takes the grant,
 * the checkin or the failure. The core knows nothing about any pool library.
 */
export class LeaseCore implements LeaseHost<Lease> {
  /** Pools seen, by library object; the dropped ones end their leases (see {@link PoolRegistry}). */
  private readonly registry = new PoolRegistry(
    (pool) => this.poolGone(pool),
    (pool, why) => this.reportProbeFault(pool, why),
    (where, error) => this.reportError(where, error),
  );
  private readonly connections = new ConnectionLeases(this.registry);
  private readonly loosener = new CallerContextLoosener();
  private readonly shutdownHook = new ProviderShutdownHook({
    beforeShutdown: () => this.endOpenLeases(),
    beforeForceFlush: () => this.failures.flush(),
  });
  /** Every time put on a checkout span goes through it (see {@link SpanClock}). */
  readonly clock = new SpanClock();
  /** Spans of failed checkouts, finished within a budget per turn when a pool fails many at once. */
  private readonly failures = new FailureQueue(this.clock, (where, error) => this.reportError(where, error));
  private readonly errors: ErrorReports;
  private settings: LeaseCoreSettings;
  /** Set while the instrumentation is disabled: wrappers that stay in place start no lease. */
  private stopped = false;
  /**
   * Call sites carried from where a library built a query object to its checkout (thenable
   * query builders); a checkout made while one is active takes it instead of the live stack.
   */
  readonly callSites = new CallSiteCarrier((boundary) => this.captureCallSite(boundary));
  metrics: PoolMetrics;
  /** Reports a lease past the threshold (see {@link reportLeak}); never throws into the sweep. */
  private readonly onLeak = (lease: Lease, heldMs: number): void => {
    try {
      reportLeak(this.options.tracer(), this.metrics, lease, heldMs);
    } catch (error) {
      this.reportError('reportLeak', error);
    }
  };
  /** The queues the sweeps walk: those of the pools with open leases, read at every sweep. */
  private readonly heldQueues = (): Iterable<LeaseQueue<Lease>> => this.registry.busyPools().map((pool) => pool.heldLeases);
  private readonly waitingQueues = (): Iterable<LeaseQueue<Lease>> => this.registry.busyPools().map((pool) => pool.waitingLeases);
  leakWatch: LeakWatch<Lease> = NO_LEAK_WATCH;
  /** Checkouts waiting past the wait threshold (see {@link WaitStalls}). */
  readonly stalls: WaitStalls;

  constructor(private readonly options: LeaseCoreOptions) {
    this.errors = new ErrorReports(options.diag ?? diag);
    this.settings = { ...CORE_SETTINGS_UNSET, ...options.settings };
    this.metrics = this.createMetrics(options.meter);
    this.stalls = new WaitStalls(this, options.tracer, this.waitingQueues, this.settings.waitThresholdMs);
    this.leakWatch = leakWatchFor(this.settings.leakThresholdMs, this.heldQueues, this.onLeak);
  }

  /**
   * Applies a new configuration. A new leak threshold applies to the leases already held too:
   * none of them is dropped from the watch, and none is reported twice.
   */
  configure(settings: LeaseCoreSettings): void {
    const previousThreshold = this.settings.leakThresholdMs;
    this.settings = settings;
    this.stalls.configure(settings.waitThresholdMs, !this.stopped);
    const threshold = settings.leakThresholdMs;
    if (threshold === previousThreshold) return;
    this.leakWatch = rewatch(this.leakWatch, threshold, this.heldQueues, this.onLeak, !this.stopped);
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
      const tracked = this.registry.track(pool, probe);
      const callerContext = context.active();
      const requestedAt = performance.now();
      const pendingAhead = pendingAheadOf(probe, pool, tracked, this.reportProbeFault);
      // A request that queues starts its span when it is granted or fails (Lease.span).
      const span = pendingAhead === undefined ? startCheckoutSpan(this.options.tracer(), tracked, callerContext, this.clock.toSpanTime(requestedAt)) : undefined;
      // Captured right here, not through a helper method: every frame between here and the
      // boundary is walked by the capture (~0.4 µs each on the CI machine). Unsampled leases
      // still need their call site when leaks are watched, for the counter and the leak report:
      // theirs is captured now and read only if something asks (DeferredStack). So is a queued
      // one's, whose sampling decision comes at its grant: read then if its span records (an
      // exhausted pool's queue of unsampled requests pays no reading).
      let stack: HeldStack = this.callSites.current(callerContext);
      if (stack === undefined) {
        try {
          if (span?.isRecording() === true) stack = this.settings.stackCapture.capture(boundary);
          else if (span === undefined || this.settings.leakThresholdMs > 0) stack = this.settings.stackCapture.captureDeferred(boundary);
        } catch (error) {
          this.reportError('captureStack', error);
        }
      }
      if (span !== undefined && stack !== undefined && span.isRecording()) span.setAttributes(resolveStack(stack)!.attributes);
      const caller = new CallerContext(callerContext);
      const lease = new Lease(this, tracked, span, caller, caller.parent?.traceId, stack, requestedAt, pendingAhead);
      this.registry.markBusy(tracked);
      tracked.waitingLeases.append(lease);
      this.stalls.watch();
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
  trackPool<P extends object>(pool: P, probe: PoolProbe<P>): LeasePool {
    return this.registry.track(pool, probe);
  }

  /** Ends every open lease with ERROR status, and the failed ones still queued (the tracer provider is shutting down). */
  endOpenLeases(): void {
    this.failures.flush();
    this.endLeases(this.registry.busyPools());
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
      const pool = this.registry.get(poolObject);
      if (pool === undefined) return;
      for (const lease of pool.openLeases()) {
        if (!lease.isHeld) this.stalls.endAtShutdown(lease, 'pool ended with the checkout still waiting');
        else if (closedHeld) lease.checkin(true, boundary);
      }
    } catch (error) {
      this.reportError('poolEnded', error);
    }
  }

  startQueuedSpan(lease: Lease): Span {
    try {
      const span = startCheckoutSpan(this.options.tracer(), lease.pool, lease.callerContext, this.clock.toSpanTime(lease.requestedAt));
      if (span.isRecording()) {
        if (lease.stack !== undefined) span.setAttributes(lease.stack.attributes);
        if (lease.pendingAtRequest !== undefined) span.setAttribute(ATTR_POOL_PENDING_AT_REQUEST, lease.pendingAtRequest);
        this.stalls.spanStarted(lease, span);
      }
      return span;
    } catch (error) {
      this.reportError('startQueuedSpan', error);
      return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    }
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
    lease.pool.holdLease(lease);
    this.leakWatch.watch();
  }

  /** Number of open leases across all pools (tests and diagnostics). */
  get openLeaseCount(): number {
    return this.registry.openLeaseCount;
  }

  /**
   * On disable: ends every open lease (its release or grant may now bypass the unpatched library
   * functions, so it could only misreport later), stops the leak timer and restores the tracer
   * provider's shutdown.
   */
  stop(): void {
    this.stopped = true;
    this.failures.flush();
    this.endLeases(this.registry.busyPools(), 'instrumentation disabled with the lease open');
    this.leakWatch.stop();
    this.stalls.stop();
    this.shutdownHook.detachAll();
  }

  /** Starts leases again after {@link LeaseCore.stop} (the instrumentation was enabled again). */
  start(): void {
    this.stopped = false;
  }

  bindConnection(connection: unknown, lease: Lease): void {
    this.connections.bind(connection, lease);
  }

  /** The latest lease granted `connection` (see {@link ConnectionLeases.leaseOf}). */
  leaseOf(connection: unknown, poolObject?: object): Lease | undefined {
    return this.connections.leaseOf(connection, poolObject);
  }

  /**
   * For libraries that release by connection object: checks the connection's lease in, or
   * records an invalid release (see {@link ConnectionLeases.release}). Pass the library's pool
   * object for pools that lend values that are not objects.
   */
  releaseConnection(connection: unknown, destroyed: boolean, boundary: Function, poolObject?: object, policy?: ReleasePolicy): void {
    this.connections.release(connection, destroyed, boundary, poolObject, policy);
  }

  /**
   * A statement is about to run on `connection` (see {@link Lease.statementIssued}); `statement`
   * is what the library was given (SQL text, or a query object with `text` or `sql`).
   *
   * @returns the lease holding the connection, whose {@link Lease.statementSettled} the adapter
   * calls when this statement finishes; undefined when no held lease has the connection.
   */
  statementIssued(connection: object, boundary: Function, statement?: unknown): Lease | undefined {
    return this.connections.statementIssued(connection, boundary, statement);
  }

  loosenLater(caller: CallerContext): void {
    this.loosener.later(caller);
  }

  leaseReturning(lease: Lease, now: number): void {
    this.leakWatch.settle(lease, now);
  }

  forget(lease: Lease): void {
    this.connections.unbind(lease);
    lease.pool.dropLease(lease);
  }

  captureCheckinStack(boundary: Function): CapturedStack | undefined {
    return this.capture(this.settings.checkinStackCapture, boundary);
  }

  /** The lease span has ended: the event goes where the mistake happens (see {@link reportLateInvalidRelease}). */
  reportInvalidRelease(lease: Lease, reason: InvalidReleaseReason, stack: CapturedStack | undefined): void {
    reportLateInvalidRelease(this.options.tracer(), lease.pool, lease.span.spanContext(), reason, stack);
  }

  reportError(where: string, error: unknown): void {
    this.errors.report(where, error);
  }

  /** One line per pool whose probe failed (see `pool-probe.ts`). */
  private readonly reportProbeFault: ProbeFaultReport = (pool, why) => (this.options.diag ?? diag).warn(probeFaultLine(pool, why));

  private endLeases(pools: Iterable<LeasePool>, reason?: string): void {
    for (const pool of pools) {
      for (const lease of pool.openLeases()) this.stalls.endAtShutdown(lease, reason);
    }
  }

  /** The library's pool object was collected: its leases can never be served or checked in. */
  private poolGone(pool: LeasePool): void {
    try {
      this.endLeases([pool], 'pool object garbage-collected with the lease open');
    } catch (error) {
      this.reportError('poolGone', error);
    }
  }

  private createMetrics(meter: Meter): PoolMetrics {
    return new PoolMetrics(
      meter,
      () => this.registry.livePools(),
      this.settings.maxMetricCallSites,
      (where, error) => this.reportError(where, error),
      () => this.settings.poolMetrics,
    );
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



/** A checkout span, child of the caller's context, with the pool's attributes for the sampler. */
function startCheckoutSpan(tracer: Tracer, pool: LeasePool, callerContext: Context, startTime: HrTime): Span {
  return tracer.startSpan(pool.spanName, { kind: SpanKind.INTERNAL, attributes: pool.attributes, startTime }, callerContext);
}
