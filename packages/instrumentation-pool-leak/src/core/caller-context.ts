import { ROOT_CONTEXT, trace, type Context, type SpanContext } from '@opentelemetry/api';

/**
 * The context a checkout was requested in, held so that a lease does not keep its request alive.
 *
 * While the checkout waits, and through the job that grants it, the whole context is held: the
 * pool's callback at the grant runs application code in it (baggage, the active request span).
 * After that job (see {@link CallerContextLoosener}) what the lease still needs of it — the trace
 * its checks compare with, the parent of a leak span — is the parent's span context, kept by
 * value. A lease that leaks thus never keeps its finished request span (~1.3 KB with its
 * attributes and events) alive. Not a WeakRef: one per grant cost a sampled cycle several µs in
 * allocation and garbage-collection work.
 */
export class CallerContext {
  private current: Context;

  constructor(
    context: Context,
    /** The span context of the span active at the request, when it was valid. */
    readonly parent: SpanContext | undefined,
  ) {
    this.current = context;
  }

  get context(): Context {
    return this.current;
  }

  /** Whether {@link CallerContext.loosen} would free anything: the request span records. */
  get holdsRecordingSpan(): boolean {
    // An unsampled request's span is a span context and nothing more: holding it costs nothing.
    return this.parent !== undefined && trace.getSpan(this.current)?.isRecording() === true;
  }

  /** From now on only the parent's span context is held. */
  loosen(): void {
    if (this.parent !== undefined) this.current = trace.setSpanContext(ROOT_CONTEXT, this.parent);
  }
}

/**
 * Loosens the caller contexts of the leases granted in this job once the job is over, with one
 * microtask per batch: the grant's own callback, which runs in the same job, still gets the whole
 * context.
 */
export class CallerContextLoosener {
  private pending: CallerContext[] = [];

  later(caller: CallerContext): void {
    if (!caller.holdsRecordingSpan) return;
    if (this.pending.length === 0) queueMicrotask(this.flush);
    this.pending.push(caller);
  }

  private readonly flush = (): void => {
    const due = this.pending;
    this.pending = [];
    for (const caller of due) caller.loosen();
  };
}
