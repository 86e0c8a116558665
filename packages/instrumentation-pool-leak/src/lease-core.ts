import { context, diag, SpanKind, trace, type DiagLogger, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { invalidReleaseAttributes, Lease, type InvalidReleaseReason, type LeaseHost } from './lease';
import { ProviderShutdownHook } from './provider-shutdown';
import { ATTR_POOL_PENDING_AT_REQUEST, EVENT_POOL_RELEASE_INVALID } from './semconv';
import { NO_STACK_CAPTURE, type CapturedStack, type StackCapture } from './stack';
import { TrackedPool, type PoolDescription } from './tracked-pool';

export interface LeaseCoreOptions {
  /** The tracer to start checkout spans with; read on every checkout (it may be replaced). */
  readonly tracer: () => Tracer;
  /** The provider whose shutdown must first end open leases; read until one is hooked. */
  readonly tracerProvider: () => TracerProvider;
  readonly stackCapture?: StackCapture;
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
}

/** Errors reported per place before that place goes quiet, so a broken hook cannot flood logs. */
const REPORTS_PER_PLACE = 1;

/**
 * The library-neutral heart of the instrumentation. Adapters describe their pools once and then
 * call {@link LeaseCore.checkout} at each acquire; the returned {@link Lease} takes the grant,
 * the checkin or the failure. The core knows nothing about any pool library.
 */
export class LeaseCore implements LeaseHost {
  private readonly pools = new WeakMap<object, TrackedPool>();
  /** Pools with at least one open lease; a pool without leases is not referenced from here. */
  private readonly busyPools = new Set<TrackedPool>();
  private readonly leaseByConnection = new WeakMap<object, Lease>();
  private readonly shutdownHook = new ProviderShutdownHook(() => this.endOpenLeases());
  private readonly reported = new Map<string, number>();
  private stackCapture: StackCapture;
  private readonly log: DiagLogger;

  constructor(private readonly options: LeaseCoreOptions) {
    this.stackCapture = options.stackCapture ?? NO_STACK_CAPTURE;
    this.log = options.diag ?? diag;
  }

  /** Replaces the stack capture (after a configuration change). */
  setStackCapture(capture: StackCapture): void {
    this.stackCapture = capture;
  }

  /**
   * A checkout was requested on `pool`. Starts the checkout span as a child of the active
   * context and, when the span records, captures the caller's stack above `boundary` (the
   * patched function, so its own frames and those above it are left out).
   *
   * @returns undefined only if the instrumentation itself failed; the adapter then passes through.
   */
  checkout<P extends object>(pool: P, probe: PoolProbe<P>, boundary: Function): Lease | undefined {
    try {
      this.shutdownHook.attach(this.options.tracerProvider());
      const tracked = this.trackPool(pool, probe);
      const callerContext = context.active();
      const span = this.options.tracer().startSpan(
        tracked.spanName,
        { kind: SpanKind.INTERNAL, attributes: tracked.attributes },
        callerContext,
      );
      let stack: CapturedStack | undefined;
      if (span.isRecording()) {
        stack = this.captureStack(boundary);
        if (stack !== undefined) span.setAttributes(stack.attributes);
        const pendingAhead = probe.pendingAhead?.(pool);
        if (pendingAhead !== undefined) span.setAttribute(ATTR_POOL_PENDING_AT_REQUEST, pendingAhead);
      }
      const lease = new Lease(this, tracked, span, callerContext, stack);
      if (tracked.openLeases.size === 0) this.busyPools.add(tracked);
      tracked.openLeases.add(lease);
      return lease;
    } catch (error) {
      this.reportError('checkout', error);
      return undefined;
    }
  }

  /** The tracked pool for a library pool object, described on first sight only. */
  trackPool<P extends object>(pool: P, probe: PoolProbe<P>): TrackedPool {
    let tracked = this.pools.get(pool);
    if (tracked === undefined) {
      tracked = new TrackedPool(probe.describe(pool));
      this.pools.set(pool, tracked);
    }
    return tracked;
  }

  /** Links a granted connection object to its lease, for libraries that release by object. */
  bindConnection(connection: object, lease: Lease): void {
    this.leaseByConnection.set(connection, lease);
  }

  /** The open lease holding `connection`, if any. */
  leaseOf(connection: object): Lease | undefined {
    return this.leaseByConnection.get(connection);
  }

  /** Forgets the link from a connection to its lease (checkin, destroy). */
  unbindConnection(connection: object, lease: Lease): void {
    if (this.leaseByConnection.get(connection) === lease) this.leaseByConnection.delete(connection);
  }

  /** Ends every open lease with ERROR status (the tracer provider is shutting down). */
  endOpenLeases(): void {
    for (const pool of [...this.busyPools]) {
      for (const lease of [...pool.openLeases]) lease.endAtShutdown();
    }
  }

  /** Number of open leases across all pools (tests and diagnostics). */
  get openLeaseCount(): number {
    let count = 0;
    for (const pool of this.busyPools) count += pool.openLeases.size;
    return count;
  }

  /** Restores the tracer provider's shutdown (on disable). */
  detachFromProvider(): void {
    this.shutdownHook.detachAll();
  }

  forget(lease: Lease): void {
    const pool = lease.pool;
    pool.openLeases.delete(lease);
    if (pool.openLeases.size === 0) this.busyPools.delete(pool);
  }

  captureStack(boundary: Function): CapturedStack | undefined {
    try {
      return this.stackCapture.capture(boundary);
    } catch (error) {
      this.reportError('captureStack', error);
      return undefined;
    }
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
}
