import { ROOT_CONTEXT, trace, type Context, type SpanContext } from '@opentelemetry/api';

/**
 * The context a checkout was requested in, held so that a lease does not keep its request alive.
 *
 * While the checkout waits, the whole context is held: the pool's callback at the grant runs
 * application code in it (baggage, the active request span). From the grant on it is held
 * weakly: the grant's callback still runs in it (a WeakRef's target stays alive until the end of
 * the job that created it), and so does anything later while the request lives; once the request
 * ended and was collected, what the lease still needs of it — the trace its checks compare with,
 * the parent of a leak span — is the parent's span context, kept by value. A lease that leaks
 * thus never keeps its finished request span (~1.3 KB with its attributes and events) alive.
 */
export class CallerContext {
  private strong: Context | undefined;
  private weak: WeakRef<Context> | undefined;

  constructor(
    context: Context,
    /** The span context of the span active at the request, when it was valid. */
    readonly parent: SpanContext | undefined,
  ) {
    this.strong = context;
  }

  /** The caller's context while it lives; else a context that carries only its span context. */
  get context(): Context {
    return this.strong ?? this.weak?.deref() ?? (this.parent === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, this.parent));
  }

  /** From now on the caller's context is held weakly (see the class). */
  loosen(): void {
    const strong = this.strong;
    // A context without a request span is kept whole: there is no span to free, and its values
    // (baggage) could not be rebuilt from a span context.
    if (strong === undefined || this.parent === undefined) return;
    // An unsampled request's span is a span context and nothing more: holding it costs nothing,
    // and a WeakRef per grant (~1 µs) would cost the unsampled checkout most.
    if (trace.getSpan(strong)?.isRecording() !== true) return;
    this.strong = undefined;
    this.weak = new WeakRef(strong);
  }
}
