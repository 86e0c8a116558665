import { context as contexts, INVALID_SPANID, INVALID_TRACEID, ROOT_CONTEXT, trace, type Context, type SpanContext } from '@opentelemetry/api';

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
  /** The whole context until loosened; then undefined, and `context` is rebuilt from `parent` when asked. */
  private current: Context | undefined;

  /** The span context of the span active at the request, when it was valid. */
  readonly parent: SpanContext | undefined;

  constructor(context: Context) {
    this.current = context;
    const parent = trace.getSpanContext(context);
    // Not isSpanContextValid: its hex check of both ids cost every checkout ~0.1 µs, and a span
    // context in a context was built by a tracer or a propagator, which validated it then.
    this.parent = parent !== undefined && parent.traceId !== INVALID_TRACEID && parent.spanId !== INVALID_SPANID ? parent : undefined;
  }

  /**
   * The caller's context; once loosened, a context holding only the parent's span context, made
   * anew at each ask (a leak span's parent, a late callback): kept, an API context costs ~0.4 KB
   * per open lease (its map and closures), and most leases never ask.
   */
  get context(): Context {
    return this.current ?? (this.parent === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, this.parent));
  }

  /** Whether {@link CallerContext.loosen} would free anything: the request span records. */
  get holdsRecordingSpan(): boolean {
    // An unsampled request's span is a span context and nothing more: holding it costs nothing.
    return this.parent !== undefined && this.current !== undefined && trace.getSpan(this.current)?.isRecording() === true;
  }

  /** From now on only the parent's span context is held. */
  loosen(): void {
    if (this.parent !== undefined) this.current = undefined;
  }
}

/** What a checked-in lease keeps of its caller: nothing (its connection may keep the ended lease for a late release). */
export const CHECKED_IN_CALLER = new CallerContext(ROOT_CONTEXT);

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

/** Calls `fn` on `thisArg` with `args` inside `context`. */
export function applyInContext<This, Args extends unknown[], Result>(
  context: Context,
  fn: (this: This, ...args: Args) => Result,
  thisArg: This,
  args: Args,
): Result {
  // Through Reflect.apply: the context manager would call `fn` with `this` = null when
  // `thisArg` is undefined, which a strict-mode callback can tell apart.
  return contexts.with(context, Reflect.apply, undefined, fn, thisArg, args) as Result;
}
