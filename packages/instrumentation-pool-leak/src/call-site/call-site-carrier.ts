import { context, createContextKey, type Context } from '@opentelemetry/api';
import type { CapturedStack } from './stack';

/**
 * Carries the application's call site from where a library builds a query or transaction
 * object to where that library checks a connection out for it.
 *
 * Query builders that run from `then()` (`await knex('t').where(...)`, `await db.select()...`
 * in Drizzle) check out in a promise job: no application frame is left on the stack there, so
 * the checkout's own stack would name only the library. The application's frames are live while
 * it builds (or starts) the query, so a hook remembers the call site on the object then
 * ({@link CallSiteCarrier.remember}), objects derived from it inherit it
 * ({@link CallSiteCarrier.derive}), and the library's execution of the object runs inside
 * {@link CallSiteCarrier.run}: every checkout it starts — synchronously, or after awaits inside
 * the library — takes the carried call site instead of the live stack.
 *
 * One carrier per lease core (per instrumentation instance). A checkout reads
 * {@link CallSiteCarrier.current}: one field test, plus one context lookup only once some
 * execution was carried, so applications without a hooked library pay nothing more.
 */
export class CallSiteCarrier {
  /** The call site each hooked object was built at. Weak: it goes with the object. */
  private readonly sites = new WeakMap<object, CapturedStack>();
  /** Per instance, so two instrumentations never read each other's stacks. */
  private readonly key = createContextKey('pool-leak carried call site');
  /**
   * The call site of the execution running synchronously right now. The context alone would
   * do where a context manager is installed; this also serves applications without one.
   */
  private syncSite: CapturedStack | undefined;
  /** False until the first carried execution: until then no checkout reads the context. */
  private carrying = false;

  /** @param capture the application's stack above `boundary`, or undefined (stacks off, failure). */
  constructor(private readonly capture: (boundary: Function) => CapturedStack | undefined) {}

  /**
   * Remembers the caller of `boundary` as where `target` was built. Inside a carried execution
   * the object is the library's own (a subquery it compiles, a transaction it opens) and takes
   * the carried call site, without a capture; elsewhere the live stack, if it holds an
   * application frame. With neither, an earlier call site of `target` stays.
   */
  remember(target: unknown, boundary: Function): void {
    if (!isObject(target)) return;
    const site = this.active() ?? this.live(boundary);
    if (site !== undefined) this.sites.set(target, site);
  }

  /**
   * `derived` was made from `source` (a clone): the application's call site if the application
   * itself derived it, else the one `source` was built at.
   */
  derive(source: unknown, derived: unknown, boundary: Function): void {
    if (!isObject(derived)) return;
    const sourceSite = isObject(source) ? this.sites.get(source) : undefined;
    const active = this.active();
    const site = active === undefined ? (this.live(boundary) ?? sourceSite) : (sourceSite ?? active);
    if (site !== undefined) this.sites.set(derived, site);
  }

  /** The call site remembered for `target`, if any. */
  siteOf(target: unknown): CapturedStack | undefined {
    return isObject(target) ? this.sites.get(target) : undefined;
  }

  /**
   * Runs `fn`; checkouts it starts take `site` as their stack and call site instead of the
   * live stack, whether they start synchronously or after awaits inside `fn`'s library code
   * (the site travels in the OpenTelemetry context, as the span context does). Without a site,
   * just runs `fn`.
   */
  run<T>(site: CapturedStack | undefined, fn: () => T): T {
    if (site === undefined) return fn();
    this.carrying = true;
    const outer = this.syncSite;
    this.syncSite = site;
    try {
      return context.with(context.active().setValue(this.key, site), fn);
    } finally {
      this.syncSite = outer;
    }
  }

  /**
   * {@link CallSiteCarrier.run} for checkouts that start synchronously inside `fn` only: no
   * context is entered, so it costs two field writes (for an adapter's own hot path).
   */
  runSynchronously<T>(site: CapturedStack | undefined, fn: () => T): T {
    if (site === undefined) return fn();
    const outer = this.syncSite;
    this.syncSite = site;
    try {
      return fn();
    } finally {
      this.syncSite = outer;
    }
  }

  /**
   * `callback` made to run with the call site of where it came from (none, usually) instead of
   * the carried one: for the application's callbacks that a carried library call invokes
   * (`then` handlers, a transaction's body), so that checkouts the application makes there are
   * its own. Only the call site changes: the callback keeps the context the library runs it in
   * (the library's own spans stay its parents).
   */
  callerSide<F extends (...args: never[]) => unknown>(callback: F): F {
    const callerSite = this.syncSite;
    const callerContextSite = context.active().getValue(this.key);
    const carrier = this;
    const onCallerSide = function (this: unknown, ...args: Parameters<F>): ReturnType<F> {
      const carried = carrier.syncSite;
      carrier.syncSite = callerSite;
      try {
        const active = context.active();
        const callerContext = callerContextSite === undefined ? active.deleteValue(carrier.key) : active.setValue(carrier.key, callerContextSite);
        return context.with(callerContext, () => callback.apply(this, args) as ReturnType<F>);
      } finally {
        carrier.syncSite = carried;
      }
    };
    // Some libraries look at a callback's arity.
    Object.defineProperty(onCallerSide, 'length', { value: callback.length });
    return onCallerSide as unknown as F;
  }

  /** The call site carried to a checkout that starts now, in `active` (the caller's context). */
  current(active: Context): CapturedStack | undefined {
    if (this.syncSite !== undefined) return this.syncSite;
    return this.carrying ? (active.getValue(this.key) as CapturedStack | undefined) : undefined;
  }

  /** The call site carried where the code runs now, if any. */
  private active(): CapturedStack | undefined {
    return this.current(context.active());
  }

  /** The stack above `boundary` if it holds an application frame. */
  private live(boundary: Function): CapturedStack | undefined {
    const live = this.capture(boundary);
    return live?.callSite !== undefined ? live : undefined;
  }
}

function isObject(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}
