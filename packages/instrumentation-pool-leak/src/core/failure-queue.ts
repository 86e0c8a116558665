import { SpanStatusCode, type Attributes, type Span, type TimeInput } from '@opentelemetry/api';
import { ATTR_ERROR_TYPE, ATTR_EXCEPTION_MESSAGE, ATTR_EXCEPTION_TYPE } from '@opentelemetry/semantic-conventions';
import { EVENT_POOL_EXHAUSTED } from '../signals/semconv';
import type { SpanClock } from './span-clock';

/** Failed checkouts whose spans are finished in the turn they fail; the rest wait for the next turns. */
const FINISHED_AT_ONCE_PER_TURN = 32;
/** Span work per later turn of the loop before yielding to the application again. */
const BUDGET_PER_TURN_MS = 5;
const EXCEPTION_EVENT = 'exception';

/** Everything a failed checkout's span still needs, decided at the moment of the failure. */
export interface FailedCheckout {
  /**
   * The checkout whose span this is, or, when that span started at the request, a holder of the
   * span itself (the lease keeps only its context once it ended). Read only when the span is
   * finished: a checkout that queued starts its span then (see `Lease.span`), so the spans of a
   * storm's queued failures are made, ended and exported in one go instead of waiting in this
   * queue.
   */
  readonly checkout: { readonly span: Span };
  readonly error: unknown;
  /** `performance.now()` at the failure: the span's end and its events carry this time. */
  readonly failedAt: number;
  /** The `pool.exhausted` attributes, holders named at the failure, when the pool had nothing to give. */
  readonly exhausted: Attributes | undefined;
  /**
   * The pool's own timeout or exhausted error: its stack is the pool's timer, never the
   * application's (the checkout span has the call site), so it is not read.
   */
  readonly poolError: boolean;
}

/**
 * Finishes the spans of failed checkouts without stalling the loop when a pool fails thousands
 * of them in one tick (generic-pool fires all its timeouts in one timer callback): the first
 * few of a turn end at once, the rest in order on the following turns within a time budget.
 * The queue holds only failures not yet finished, and {@link FailureQueue.flush} empties it
 * (provider shutdown, disable).
 */
export class FailureQueue {
  private pending: (FailedCheckout | undefined)[] = [];
  private head = 0;
  private finishedThisTurn = 0;
  private turnScheduled = false;
  private readonly onTurn = (): void => this.runTurn();

  constructor(
    private readonly clock: SpanClock,
    private readonly reportError: (where: string, error: unknown) => void,
  ) {}

  /** Failures waiting for a later turn (tests and diagnostics). */
  get size(): number {
    return this.pending.length - this.head;
  }

  /** Finishes the span now if this turn still has room and nothing waits before it; else queues it. */
  finish(failure: FailedCheckout): void {
    if (this.size === 0 && this.finishedThisTurn < FINISHED_AT_ONCE_PER_TURN) {
      this.finishedThisTurn++;
      this.scheduleTurn();
      this.finishOne(failure);
      return;
    }
    this.pending.push(failure);
    this.scheduleTurn();
  }

  /** Finishes every queued span now, in order. */
  flush(): void {
    while (this.head < this.pending.length) this.takeAndFinish();
    this.clear();
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(this.onTurn);
  }

  private runTurn(): void {
    this.turnScheduled = false;
    this.finishedThisTurn = 0;
    const deadline = performance.now() + BUDGET_PER_TURN_MS;
    while (this.head < this.pending.length && performance.now() < deadline) this.takeAndFinish();
    if (this.head < this.pending.length) this.scheduleTurn();
    else this.clear();
  }

  private takeAndFinish(): void {
    const failure = this.pending[this.head];
    this.pending[this.head++] = undefined;
    if (failure !== undefined) this.finishOne(failure);
  }

  private clear(): void {
    this.pending = [];
    this.head = 0;
  }

  private finishOne(failure: FailedCheckout): void {
    try {
      const { failedAt, exhausted } = failure;
      const span = failure.checkout.span;
      if (!span.isRecording()) {
        span.end();
        return;
      }
      const time = this.clock.toSpanTime(failedAt);
      if (exhausted !== undefined) span.addEvent(EVENT_POOL_EXHAUSTED, exhausted, time);
      endWithError(span, failure.error, failure.poolError, time);
    } catch (error) {
      this.reportError('failed', error);
    }
  }
}

/**
 * ERROR status, exception event and `error.type`, then end: the one way a failed span ends.
 * With `withoutStack`, the exception event has type and message only, and `error.stack` is
 * never read: V8 formats a stack lazily, on first read, and a storm of pool timeouts would
 * pay that for a stack naming only the pool's timer.
 */
export function endWithError(span: Span, error: unknown, withoutStack = false, time?: TimeInput): void {
  if (error instanceof Error) {
    if (withoutStack) span.addEvent(EXCEPTION_EVENT, exceptionAttributes(error), time);
    else span.recordException(error, time);
    span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else {
    span.setAttribute(ATTR_ERROR_TYPE, '_OTHER');
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
  }
  span.end(time);
}

/** `exception.type` and `exception.message` as the SDK's `recordException` names them. */
function exceptionAttributes(error: Error): Attributes {
  const attributes: Attributes = {};
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') attributes[ATTR_EXCEPTION_TYPE] = String(code);
  else if (error.name) attributes[ATTR_EXCEPTION_TYPE] = error.name;
  if (error.message) attributes[ATTR_EXCEPTION_MESSAGE] = error.message;
  return attributes;
}

function errorType(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code !== '') return code;
  // Some libraries subclass Error without naming the subclass (tarn's TimeoutError).
  const className = error.constructor?.name;
  if (error.name === 'Error' && typeof className === 'string' && className !== '' && className !== 'Error') return className;
  return error.name || '_OTHER';
}
