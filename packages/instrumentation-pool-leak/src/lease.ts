import { context, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { classifyCheckin, currentAsyncResourceType, stackShowsFinalizer, type MisplacedCheckin } from './checkin-context';
import { attachPoolHolders, holdersOf } from './error-holders';
import type { FailedCheckout } from './failure-queue';
import { leaseStateAttributes, StatementActivity, type LeaseStateSnapshot } from './lease-state';
import type { PoolMetrics } from './metrics';
import { exhaustedPoolAttributes } from './pool-holders';
import {
  ATTR_POOL_CHECKIN_ASYNC_RESOURCE_TYPE,
  ATTR_POOL_CHECKIN_DESTROYED,
  ATTR_POOL_CHECKIN_STACKTRACE,
  ATTR_POOL_HELD_MS,
  ATTR_POOL_RELEASE_REASON,
  ATTR_POOL_RELEASE_STACKTRACE,
  ATTR_POOL_USE_SPAN_ID,
  ATTR_POOL_USE_STACKTRACE,
  ATTR_POOL_USE_TRACE_ID,
  ATTR_POOL_WAIT_MS,
  EVENT_POOL_ACQUIRED,
  EVENT_POOL_CHECKIN_FINALIZER,
  EVENT_POOL_CHECKIN_LOOP_TICK,
  EVENT_POOL_LEAK_RETURNED,
  EVENT_POOL_LEAK_SUSPECTED,
  EVENT_POOL_RELEASE_INVALID,
  EVENT_POOL_USE_FOREIGN_CONTEXT,
} from './semconv';
import type { CapturedStack } from './stack';
import type { TrackedPool } from './tracked-pool';

/** Why a release was not a valid checkin. Values of `pool.release.reason`. */
export type InvalidReleaseReason = 'double_release' | 'destroyed' | 'foreign';

/** What a lease needs from the core that created it. */
export interface LeaseHost {
  readonly metrics: PoolMetrics;
  /** The pool granted the lease a connection: it is now a holder, watched for leaks. */
  leaseGranted(lease: Lease): void;
  /** Called exactly once, when the lease ends for any reason. */
  forget(lease: Lease): void;
  /** Remembers which lease holds `connection`, for adapters that release or query by it. */
  bindConnection(connection: unknown, lease: Lease): void;
  /** Records an invalid release whose lease span has already ended. */
  reportInvalidRelease(lease: Lease, reason: InvalidReleaseReason, stack: CapturedStack | undefined): void;
  /** The stack above `boundary`, capped like checkin stacks. */
  captureCheckinStack(boundary: Function): CapturedStack | undefined;
  reportError(where: string, error: unknown): void;
  /** Finishes a failed checkout's span, now or on a later turn of the loop (the core's failure queue). */
  finishFailure(failure: FailedCheckout): void;
  /** Whether the holders are appended to the message of the pool's own exhausted error. */
  readonly enrichErrors: boolean;
}

const enum State {
  Waiting,
  Held,
  Ended,
}

const MS_PER_SECOND = 1000;
/** The state of a lease whose connection ran no statement yet; only ever read. */
const NO_STATEMENTS = new StatementActivity();

/**
 * One checkout, from the request to the checkin: owns the checkout span and its timing.
 * Adapters call these methods at the library's acquire and release points; none of them throws.
 */
export class Lease {
  private state = State.Waiting;
  private readonly requestedAt = performance.now();
  /** `performance.now()` at the grant; 0 before. */
  grantedAt = 0;
  private leakReported = false;
  private destroyed = false;
  private endedByShutdown = false;
  /** The last foreign trace reported, so a burst of statements from it is one event. */
  private lastForeignTraceId: string | undefined;
  /** The connection (or resource) granted to this checkout, when the adapter named it. */
  connection: unknown;
  /**
   * Statements on the granted connection: what the holders lists and leak reports tell. Made at
   * the first statement, so a pool whose resources run no statements (generic-pool, tarn
   * resources that are not connections) pays nothing for it.
   */
  private activity: StatementActivity | undefined;
  private settleListener: (() => void) | undefined;

  constructor(
    private readonly host: LeaseHost,
    readonly pool: TrackedPool,
    /** The checkout span; once the lease ended, only its context (see `finish`). */
    public span: Span,
    /** The context active when the checkout was requested; callbacks run in it. */
    readonly callerContext: Context,
    /** The trace the checkout ran in, if any: a checkin outside it is a loop-tick checkin. */
    readonly ownerTraceId: string | undefined,
    readonly stack: CapturedStack | undefined,
  ) {}

  /** True from the request until checkin, destruction or failure. */
  get isOpen(): boolean {
    return this.state !== State.Ended;
  }

  /** True while the connection is granted and not yet checked in. */
  get isHeld(): boolean {
    return this.state === State.Held;
  }

  /** Milliseconds since the grant, or 0 if not held. */
  heldMs(now = performance.now()): number {
    return this.state === State.Held ? now - this.grantedAt : 0;
  }

  /** True when the tracer provider's shutdown ended the lease while the connection was out. */
  get endedAtProviderShutdown(): boolean {
    return this.endedByShutdown;
  }

  /** True once the lease was reported as a suspected leak. */
  get leakSuspected(): boolean {
    return this.leakReported;
  }

  /** True once the connection was checked in with a request to destroy it. */
  get endedByDestroy(): boolean {
    return this.destroyed;
  }

  /**
   * The pool granted a connection to this checkout. Pass the `connection` when the library later
   * releases or queries by it (any value: some pools lend numbers), so the core can find the
   * lease again.
   */
  granted(connection?: unknown): void {
    if (this.state !== State.Waiting) return;
    try {
      this.state = State.Held;
      if (connection !== undefined) {
        this.connection = connection;
        this.host.bindConnection(connection, this);
      }
      this.grantedAt = performance.now();
      const waitMs = this.grantedAt - this.requestedAt;
      this.span.setAttribute(ATTR_POOL_WAIT_MS, waitMs);
      this.span.addEvent(EVENT_POOL_ACQUIRED);
      this.host.metrics.recordWait(this.pool, waitMs / MS_PER_SECOND);
      this.host.leaseGranted(this);
    } catch (error) {
      this.host.reportError('granted', error);
    }
  }

  /**
   * The connection went back to the pool. `destroyed` when the release asked to discard it;
   * `boundary` is the adapter's release function, the top of the checkin stack.
   */
  checkin(destroyed: boolean, boundary: Function): void {
    if (this.state !== State.Held) return;
    try {
      const heldMs = performance.now() - this.grantedAt;
      this.span.setAttribute(ATTR_POOL_HELD_MS, heldMs);
      if (destroyed) {
        this.destroyed = true;
        this.span.setAttribute(ATTR_POOL_CHECKIN_DESTROYED, true);
      }
      const misplaced = classifyCheckin(this.ownerTraceId);
      if (misplaced !== undefined) this.recordMisplacedCheckin(misplaced, boundary);
      if (this.leakReported) this.span.addEvent(EVENT_POOL_LEAK_RETURNED, { [ATTR_POOL_HELD_MS]: heldMs });
      this.host.metrics.recordUse(this.pool, heldMs / MS_PER_SECOND);
      this.span.end();
    } catch (error) {
      this.host.reportError('checkin', error);
    }
    this.finish();
  }

  /**
   * The checkout failed (timeout, full wait queue, pool closed, connect error). When the pool had
   * nothing to give, the span names who holds its connections (`pool.exhausted`).
   */
  failed(error: unknown): void {
    if (this.state !== State.Waiting) return;
    try {
      const failedAt = performance.now();
      const timeout = this.pool.isTimeout(error);
      if (timeout) this.host.metrics.recordTimeout(this.pool);
      let exhausted: Attributes | undefined;
      if (this.pool.isExhausted(error)) {
        exhausted = exhaustedPoolAttributes(this.pool, failedAt);
        attachPoolHolders(error, holdersOf(exhausted), this.host.enrichErrors);
      }
      // The holders and the error's `poolHolders` are decided now; the span may end a few turns later, at this time.
      this.host.finishFailure({ span: this.span, error, failedAt, exhausted, poolError: timeout || exhausted !== undefined });
    } catch (inner) {
      this.host.reportError('failed', inner);
    }
    this.finish();
  }

  /** Held past the leak threshold: recorded on the checkout span, once. */
  markLeakSuspected(heldMs: number, stateAttributes: Attributes = leaseStateAttributes(this.activityAt())): void {
    if (this.state !== State.Held || this.leakReported) return;
    this.leakReported = true;
    this.span.addEvent(EVENT_POOL_LEAK_SUSPECTED, { [ATTR_POOL_HELD_MS]: heldMs, ...stateAttributes });
  }

  /**
   * A release that the lease cannot accept (it already ended, or the connection was destroyed).
   * Recorded only: the adapter still calls the library, which keeps its own behaviour.
   */
  invalidRelease(reason: InvalidReleaseReason, boundary: Function): void {
    try {
      const stack = this.host.captureCheckinStack(boundary);
      if (this.span.isRecording()) {
        this.span.addEvent(EVENT_POOL_RELEASE_INVALID, invalidReleaseAttributes(reason, stack));
      } else {
        this.host.reportInvalidRelease(this, reason, stack);
      }
    } catch (error) {
      this.host.reportError('invalidRelease', error);
    }
  }

  /**
   * A statement is about to run on this lease's connection: counted, marked in flight until
   * {@link Lease.statementSettled}, and kept by reference (`statement`, as the library was given
   * it) for the summary of a later report. If another trace is active, that is the shared-client
   * race (a connection taken in one request and used by another): recorded on the checkout span
   * once per foreign trace, linked from the active span, counted by call site. The common path
   * is a few field writes, one context lookup and one id comparison, with no allocation.
   *
   * @returns whether the lease is held: only then will the statement's settlement count.
   */
  statementIssued(boundary: Function, statement?: unknown): boolean {
    if (this.state !== State.Held) return false;
    try {
      (this.activity ??= new StatementActivity()).issued(statement, performance.now());
    } catch (error) {
      this.host.reportError('statementIssued', error);
    }
    if (this.ownerTraceId !== undefined) this.checkStatementContext(this.ownerTraceId, boundary);
    return true;
  }

  /** The statement announced by {@link Lease.statementIssued} finished, with a result or an error. */
  statementSettled(): void {
    if (this.state === State.Held) this.activity?.settled(performance.now());
  }

  /** {@link Lease.statementSettled} as a listener (a statement's `end` event), made once per lease. */
  get settler(): () => void {
    return (this.settleListener ??= () => this.statementSettled());
  }

  /** For a library whose transaction API opens a transaction without SQL text through a hooked method. */
  transactionBegan(): void {
    if (this.state === State.Held) (this.activity ??= new StatementActivity()).transactionBegan();
  }

  /** For a library whose transaction API commits or rolls back without SQL text through a hooked method. */
  transactionEnded(): void {
    if (this.state === State.Held) this.activity?.transactionEnded();
  }

  /** What the held connection is doing now: busy, idle, or idle in a transaction. */
  activityAt(now = performance.now()): LeaseStateSnapshot {
    return (this.activity ?? NO_STATEMENTS).snapshot(now, this.grantedAt);
  }

  private checkStatementContext(owner: string, boundary: Function): void {
    try {
      const active = trace.getSpanContext(context.active());
      if (active === undefined || active.traceId === owner || active.traceId === this.lastForeignTraceId) return;
      this.lastForeignTraceId = active.traceId;
      const attributes: Record<string, string> = {
        [ATTR_POOL_USE_TRACE_ID]: active.traceId,
        [ATTR_POOL_USE_SPAN_ID]: active.spanId,
      };
      const stack = this.host.captureCheckinStack(boundary);
      if (stack !== undefined) attributes[ATTR_POOL_USE_STACKTRACE] = stack.text;
      this.span.addEvent(EVENT_POOL_USE_FOREIGN_CONTEXT, attributes);
      const activeSpan = trace.getActiveSpan();
      if (activeSpan !== undefined && activeSpan.isRecording()) activeSpan.addLink({ context: this.span.spanContext() });
      this.host.metrics.recordForeignUse(this.pool, this.stack);
    } catch (error) {
      this.host.reportError('statementIssued', error);
    }
  }

  /**
   * Ends a still-open lease because the tracer provider shuts down, so it gets exported; or, with
   * another `reason`, because the instrumentation was disabled or the pool is gone. A later
   * grant or release of it is then the lease's own, late, and not reported.
   */
  endAtShutdown(reason = 'lease still open at tracer provider shutdown'): void {
    if (this.state === State.Ended) return;
    this.endedByShutdown = true;
    try {
      if (this.state === State.Held) this.span.setAttribute(ATTR_POOL_HELD_MS, performance.now() - this.grantedAt);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      this.span.end();
    } catch (error) {
      this.host.reportError('endAtShutdown', error);
    }
    this.finish();
  }

  /** Runs `fn` in the caller's context: pools that queue waiters lose it otherwise. */
  runInCallerContext<This, Args extends unknown[], Result>(
    fn: (this: This, ...args: Args) => Result,
    thisArg: This,
    args: Args,
  ): Result {
    // Through Reflect.apply: the context manager would call `fn` with `this` = null when
    // `thisArg` is undefined, which a strict-mode callback can tell apart.
    return context.with(this.callerContext, Reflect.apply, undefined, fn, thisArg, args) as Result;
  }

  /** The rare path: a checkin in a finalizer or outside the owner's trace. */
  private recordMisplacedCheckin(kind: MisplacedCheckin, boundary: Function): void {
    const stack = this.host.captureCheckinStack(boundary);
    const stackText = stack?.text;
    const finalizer = kind === 'finalizer' || (stackText !== undefined && stackShowsFinalizer(stackText));
    const attributes: Record<string, string> = {};
    if (stackText !== undefined) attributes[ATTR_POOL_CHECKIN_STACKTRACE] = stackText;
    if (!finalizer) {
      const resourceType = currentAsyncResourceType();
      if (resourceType !== undefined) attributes[ATTR_POOL_CHECKIN_ASYNC_RESOURCE_TYPE] = resourceType;
    }
    this.span.addEvent(finalizer ? EVENT_POOL_CHECKIN_FINALIZER : EVENT_POOL_CHECKIN_LOOP_TICK, attributes);
  }

  private finish(): void {
    if (this.state === State.Ended) return;
    this.state = State.Ended;
    // The connection keeps its latest lease (for a late release) as long as the pool keeps the
    // connection: without this, every pooled connection would retain a whole ended span.
    this.span = trace.wrapSpanContext(this.span.spanContext());
    this.activity?.clear();
    this.host.forget(this);
  }
}

/** Attributes of a `pool.release.invalid` event. */
export function invalidReleaseAttributes(reason: InvalidReleaseReason, stack: CapturedStack | undefined) {
  return stack === undefined
    ? { [ATTR_POOL_RELEASE_REASON]: reason }
    : { [ATTR_POOL_RELEASE_REASON]: reason, [ATTR_POOL_RELEASE_STACKTRACE]: stack.text };
}
