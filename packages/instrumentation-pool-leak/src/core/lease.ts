import { SpanStatusCode, trace, type Attributes, type Context, type Span, type TimeInput } from '@opentelemetry/api';
import { classifyCheckin, misplacedCheckinEvent } from './checkin-context';
import { foreignTraceAt, foreignUseAttributes, linkActiveSpanTo } from './foreign-use';
import { invalidReleaseAttributes, type InvalidReleaseReason } from './invalid-release';
import { attachPoolHolders } from '../signals/error-holders';
import { leaseStateAttributes, StatementActivity, type LeaseStateSnapshot, type ServerStatusReader, type ServerTransactionStatus } from './lease-state';
import { exhaustedAttributes } from './starvation';
import {
  ATTR_POOL_CHECKIN_DESTROYED,
  ATTR_POOL_HELD_MS,
  ATTR_POOL_WAIT_MS,
  EVENT_POOL_ACQUIRED,
  EVENT_POOL_LEAK_RETURNED,
  EVENT_POOL_LEAK_SUSPECTED,
  EVENT_POOL_RELEASE_INVALID,
  EVENT_POOL_USE_FOREIGN_CONTEXT,
} from '../signals/semconv';
import { DeferredStack, type CapturedStack, type HeldStack } from '../call-site/stack';
import { applyInContext, CHECKED_IN_CALLER, type CallerContext } from './caller-context';
import type { LeaseHost } from './lease-host';
import { LeaseLifecycle } from './lease-lifecycle';
import type { TrackedPool } from './tracked-pool';

export type { InvalidReleaseReason, LeaseHost };

/** A tracked pool whose open leases are {@link Lease}s. */
export type LeasePool = TrackedPool<Lease>;

const MS_PER_SECOND = 1000;
/** The state of a lease whose connection ran no statement yet; only ever read. */
const NO_STATEMENTS = new StatementActivity();

/**
 * One checkout, from the request to the checkin: owns the checkout span and its timing.
 * Adapters call these methods at the library's acquire and release points; none of them throws.
 */
export class Lease extends LeaseLifecycle {
  /** `performance.now()` at the grant; 0 before. */
  grantedAt = 0;
  /** The last foreign trace reported, so a burst of statements from it is one event. */
  private lastForeignTraceId: string | undefined;
  /** The connection (or resource) granted to this checkout, when the adapter named it. */
  connection: unknown;
  /**
   * Statements on the granted connection, for the holders lists and leak reports; made at the
   * first statement, so resources that run none (generic-pool, tarn) pay nothing for it.
   */
  private activity: StatementActivity | undefined;
  private settleListener: (() => void) | undefined;
  /** The `pool.leak.suspected` event, until it is written (see `writeDeferredEvents`). */
  private leakEvent: { readonly attributes: Attributes; readonly time: number } | undefined;

  constructor(
    private readonly host: LeaseHost<Lease>,
    readonly pool: LeasePool,
    /**
     * The checkout span, started at the request; undefined for a request that queued, whose
     * span starts when it is granted or fails (see {@link Lease.span}).
     */
    private checkoutSpan: Span | undefined,
    /** The context active when the checkout was requested; callbacks run in it (see {@link CallerContext}). */
    private caller: CallerContext,
    /** The trace the checkout ran in, if any: a checkin outside it is a loop-tick checkin. */
    readonly ownerTraceId: string | undefined,
    /** The checkout's stack; a non-recording checkout's is read when first asked for (see {@link Lease.stack}). */
    private heldStack: HeldStack,
    /** `performance.now()` when the checkout was requested; the span starts then. */
    readonly requestedAt: number,
    /** Requests queued ahead of this one when it had to queue (`pool.pending_at_request`). */
    readonly pendingAtRequest?: number,
  ) {
    super();
    if (checkoutSpan?.isRecording() === false) this.markSpanNotRecording();
  }

  /** The stack captured at the checkout, read now if it was deferred. */
  get stack(): CapturedStack | undefined {
    const held = this.heldStack;
    if (held === undefined || !(held instanceof DeferredStack)) return held;
    const stack = held.resolve();
    this.heldStack = stack;
    return stack;
  }

  /** The context active when the checkout was requested, while it lives (see {@link CallerContext}). */
  get callerContext(): Context {
    return this.caller.context;
  }

  /**
   * The checkout span; once the lease ended, only its context (see `finish`). A request that had
   * to queue gets its span here, at its grant or failure, started at the request's time: a storm
   * of waiters then holds no span objects for as long as it waits (they would each outlive the
   * young generation and be copied by every scavenge meanwhile), and the exported span is the
   * same. Every time written on a checkout span is therefore given explicitly.
   */
  get span(): Span {
    return (this.checkoutSpan ??= this.host.startQueuedSpan(this));
  }

  /** Milliseconds since the grant, or 0 if not held. */
  heldMs(now = performance.now()): number {
    return this.isHeld ? now - this.grantedAt : 0;
  }

  /**
   * The pool granted a connection to this checkout. Pass the `connection` when the library later
   * releases or queries by it (any value: some pools lend numbers), so the core can find the
   * lease again.
   */
  granted(connection?: unknown): void {
    if (!this.becomeHeld()) return;
    try {
      if (connection !== undefined) {
        this.connection = connection;
        this.host.bindConnection(connection, this);
      }
      this.grantedAt = performance.now();
      // A lease that queued starts its span now (so links and late attributes have it).
      this.span.spanContext();
      this.host.metrics.recordWait(this.pool, (this.grantedAt - this.requestedAt) / MS_PER_SECOND);
      this.host.leaseGranted(this);
      this.host.loosenLater(this.caller);
    } catch (error) {
      this.host.reportError('granted', error);
    }
  }

  /**
   * Writes what happened to a held lease onto its span: `pool.wait_ms` and the `pool.acquired`
   * event, then `pool.leak.suspected` if it was reported, each at its own time. Called before
   * anything else is added to the span and before it ends, not when they happen: a held
   * connection then costs no event objects on its span (a few hundred bytes each, times every
   * open lease), a mass leak report leaves little for the garbage collector to copy, and the
   * exported span is the same, events in order.
   */
  private writeDeferredEvents(): void {
    if (!this.isHeld) return;
    if (this.takeGrantRecording()) {
      this.span.setAttribute(ATTR_POOL_WAIT_MS, this.grantedAt - this.requestedAt);
      this.span.addEvent(EVENT_POOL_ACQUIRED, this.spanTime(this.grantedAt));
    }
    const leakEvent = this.leakEvent;
    if (leakEvent !== undefined) {
      this.leakEvent = undefined;
      this.span.addEvent(EVENT_POOL_LEAK_SUSPECTED, leakEvent.attributes, this.spanTime(leakEvent.time));
    }
  }

  /**
   * The connection went back to the pool. `destroyed` when the release asked to discard it;
   * `boundary` is the adapter's release function, the top of the checkin stack.
   */
  checkin(destroyed: boolean, boundary: Function): void {
    if (!this.isHeld) return;
    try {
      const now = performance.now();
      const heldMs = now - this.grantedAt;
      this.host.leaseReturning(this, now);
      this.writeDeferredEvents();
      this.span.setAttribute(ATTR_POOL_HELD_MS, heldMs);
      if (destroyed) {
        this.markDestroyed();
        this.span.setAttribute(ATTR_POOL_CHECKIN_DESTROYED, true);
      }
      const checkedInAt = this.spanTime(now);
      const misplaced = classifyCheckin(this.ownerTraceId);
      if (misplaced !== undefined) {
        const event = misplacedCheckinEvent(misplaced, this.host.captureCheckinStack(boundary)?.text);
        this.span.addEvent(event.name, event.attributes, checkedInAt);
      }
      if (this.leakSuspected) this.span.addEvent(EVENT_POOL_LEAK_RETURNED, { [ATTR_POOL_HELD_MS]: heldMs }, checkedInAt);
      this.host.metrics.recordUse(this.pool, heldMs / MS_PER_SECOND);
      this.span.end(checkedInAt);
    } catch (error) {
      this.host.reportError('checkin', error);
    }
    this.caller = CHECKED_IN_CALLER;
    this.finish();
  }

  /**
   * The checkout failed (timeout, full wait queue, pool closed, connect error). When the pool had
   * nothing to give, the span names who holds its connections (`pool.exhausted`).
   */
  failed(error: unknown): void {
    if (!this.isWaiting) return;
    try {
      const failedAt = performance.now();
      const timeout = this.pool.isTimeout(error);
      let exhausted: Attributes | undefined;
      const starved = this.pool.isExhausted(error) ? exhaustedAttributes(this.pool, this.requestedAt, failedAt) : undefined;
      if (starved !== undefined) {
        exhausted = starved.attributes;
        attachPoolHolders(error, starved.holders, starved.cause, this.host.enrichErrors);
      }
      if (timeout) this.host.metrics.recordTimeout(this.pool, starved?.cause);
      // The holders and the error's `poolHolders` are decided now; the span may end a few turns later, at this time.
      // A span started at the request is handed over itself: finish() below leaves the lease only
      // its context, and a failure queued behind a burst would end that instead of the span.
      const checkout = this.checkoutSpan === undefined ? this : { span: this.checkoutSpan };
      this.host.finishFailure({ checkout, error, failedAt, exhausted, poolError: timeout || exhausted !== undefined });
    } catch (inner) {
      this.host.reportError('failed', inner);
    }
    this.finish();
  }

  /** Held past the leak threshold: recorded on the checkout span, once, when it next changes. */
  markLeakSuspected(heldMs: number, stateAttributes: Attributes = leaseStateAttributes(this.activityAt())): void {
    if (!this.markLeakReported()) return;
    this.leakEvent = { attributes: { [ATTR_POOL_HELD_MS]: heldMs, ...stateAttributes }, time: performance.now() };
  }

  /**
   * A release that the lease cannot accept (it already ended, or the connection was destroyed).
   * Recorded only: the adapter still calls the library, which keeps its own behaviour.
   */
  invalidRelease(reason: InvalidReleaseReason, boundary: Function): void {
    try {
      const stack = this.host.captureCheckinStack(boundary);
      if (this.span.isRecording()) {
        this.writeDeferredEvents();
        this.span.addEvent(EVENT_POOL_RELEASE_INVALID, invalidReleaseAttributes(reason, stack), this.spanTime(performance.now()));
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
    if (!this.isHeld) return false;
    try {
      this.statementActivity().issued(statement, performance.now());
      this.pool.holdersVersion++;
    } catch (error) {
      this.host.reportError('statementIssued', error);
    }
    if (this.ownerTraceId !== undefined) this.checkStatementContext(this.ownerTraceId, boundary);
    return true;
  }

  /**
   * The statement announced by {@link Lease.statementIssued} finished: `failed` when it was
   * answered with an error; `status` when the answer carried the server's transaction status.
   */
  statementSettled(failed = false, status?: ServerTransactionStatus): void {
    if (this.isHeld && this.activity !== undefined) {
      this.activity.settled(performance.now(), failed, status);
      this.pool.holdersVersion++;
    }
  }

  /** The driver keeps the server's transaction status of this lease's connection: `reader` reads it at each report. */
  readsServerStatusWith(reader: ServerStatusReader): void {
    if (this.isHeld) this.statementActivity().readStatusWith(reader);
  }

  /** {@link Lease.statementSettled} as a listener (a statement's `end` event), made once per lease. */
  get settler(): () => void {
    return (this.settleListener ??= () => this.statementSettled());
  }

  /** For a library whose transaction API opens a transaction without SQL text through a hooked method. */
  transactionBegan(): void {
    if (!this.isHeld) return;
    this.statementActivity().transactionBegan();
    this.pool.holdersVersion++;
  }

  /** For a library whose transaction API commits or rolls back without SQL text through a hooked method. */
  transactionEnded(): void {
    if (!this.isHeld || this.activity === undefined) return;
    this.activity.transactionEnded();
    this.pool.holdersVersion++;
  }

  /** What the held connection is doing now: busy, idle, or idle in a transaction. */
  activityAt(now = performance.now()): LeaseStateSnapshot {
    return (this.activity ?? NO_STATEMENTS).snapshot(now, this.grantedAt, this.connection);
  }

  /** Made at the first statement: the server's system decides what a failed statement does to a transaction. */
  private statementActivity(): StatementActivity {
    return (this.activity ??= new StatementActivity(this.pool.description.dbSystem));
  }

  private checkStatementContext(owner: string, boundary: Function): void {
    try {
      const foreign = foreignTraceAt(owner, this.lastForeignTraceId);
      if (foreign === undefined) return;
      this.lastForeignTraceId = foreign.traceId;
      const attributes = foreignUseAttributes(foreign, this.host.captureCheckinStack(boundary));
      this.writeDeferredEvents();
      this.span.addEvent(EVENT_POOL_USE_FOREIGN_CONTEXT, attributes, this.spanTime(performance.now()));
      linkActiveSpanTo(this.span.spanContext());
      this.host.metrics.recordForeignUse(this.pool, this.stack);
    } catch (error) {
      this.host.reportError('statementIssued', error);
    }
  }

  /**
   * Ends a still-open lease so it gets exported: the tracer provider shuts down (the status says
   * held or still waiting), or, with a `reason`, the instrumentation was disabled or the pool is
   * gone. A later grant or release of it is the lease's own, late, and not reported.
   */
  endAtShutdown(reason?: string): void {
    if (!this.isOpen) return;
    this.markEndedByShutdown();
    try {
      const now = performance.now();
      reason ??= this.isHeld ? 'lease still open at tracer provider shutdown' : 'checkout still waiting at shutdown';
      if (this.isHeld) {
        this.writeDeferredEvents();
        this.span.setAttribute(ATTR_POOL_HELD_MS, now - this.grantedAt);
      }
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      this.span.end(this.spanTime(now));
    } catch (error) {
      this.host.reportError('endAtShutdown', error);
    }
    this.finish();
  }

  /** A lease time for the span, on the core's one clock; a span that does not record is not worth the conversion. */
  private spanTime(monotonicMs: number): TimeInput {
    return this.span.isRecording() ? this.host.clock.toSpanTime(monotonicMs) : monotonicMs;
  }

  /** Runs `fn` in the caller's context: pools that queue waiters lose it otherwise. */
  runInCallerContext<This, Args extends unknown[], Result>(fn: (this: This, ...args: Args) => Result, thisArg: This, args: Args): Result {
    return applyInContext(this.callerContext, fn, thisArg, args);
  }

  private finish(): void {
    if (!this.becomeEnded()) return;
    // A connection keeps its latest lease (for a late release) while the pool keeps it: without this, it would retain a whole ended span.
    // A queued checkout that failed may not have its span yet: the failure queue starts it. A
    // span that never recorded is already nothing but its span context.
    if (this.checkoutSpan !== undefined && !this.spanNeverRecorded) this.checkoutSpan = trace.wrapSpanContext(this.checkoutSpan.spanContext());
    // Frames never read are let go of: the ended lease a connection keeps needs no call site. A
    // queued checkout that failed keeps them until the failure queue starts its span (which
    // reads them if it records), a few turns at most.
    if (this.heldStack instanceof DeferredStack && this.checkoutSpan !== undefined) this.heldStack = undefined;
    this.activity?.clear();
    this.host.forget(this);
  }
}
