import { context } from '@opentelemetry/api';
import type { InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import type { PoolLibrary } from '../libraries';
import type { AdapterContext } from './adapter';
import { hookWhereDefined, reportFrom, type AdapterCore, type Method, type MethodHook } from './kit';
import type { CapturedStack } from '../../core';
import type { FreshBuilds } from './fresh-builds';

/**
 * Wrappers for call-site hooks on query builders and ORMs: each library's hook only says which
 * of its methods build, derive, start or run query objects, and wraps them with these. The
 * carrying itself is {@link CallSiteCarrier} (`core().callSites`).
 */

/**
 * Hooks on a query builder or ORM that is not a pool: they only carry the application's call
 * site to the checkouts the pools' adapters see. Enabled with any of the pool libraries they serve.
 */
export interface CallSiteHook {
  /** The npm package hooked. */
  readonly name: string;
  /** The pool adapters whose checkouts this library makes. */
  readonly serves: readonly PoolLibrary[];
  moduleDefinitions(context: AdapterContext): InstrumentationNodeModuleDefinition[];
}

/** A method that builds a query or transaction object: the object remembers the caller. */
export function rememberingCaller<This, Args extends unknown[], Result>(
  original: Method<This, Args, Result>,
  core: () => AdapterCore,
  /** True where the built object never checks out (knex builders of a transaction's client). */
  skip?: (self: This) => boolean,
  /** Where the library's `then` reader must keep this call site if read in the same run. */
  fresh?: FreshBuilds,
): Method<This, Args, Result> {
  return function buildWithCallSite(this: This, ...args: Args): Result {
    const built = original.apply(this, args);
    try {
      if (skip?.(this) !== true) {
        core().callSites.remember(built, buildWithCallSite);
        fresh?.add(built);
      }
    } catch (error) {
      reportFrom(core, 'remember call site', error);
    }
    return built;
  };
}

/**
 * A builder method that makes the query object from `this` (Drizzle's `select()` → `from()`,
 * `insert()` → `values()`): the object takes the call site `this` was built at, without a
 * capture of its own (one capture per ORM call, at its entry point).
 */
export function passingCallSite<This, Args extends unknown[], Result>(
  original: Method<This, Args, Result>,
  core: () => AdapterCore,
  fresh?: FreshBuilds,
): Method<This, Args, Result> {
  return function passCallSite(this: This, ...args: Args): Result {
    const built = original.apply(this, args);
    try {
      const callSites = core().callSites;
      const site = callSites.siteOf(this);
      if (site !== undefined) {
        // Inside a carried run, remember() takes the carried site and captures nothing.
        callSites.runSynchronously(site, () => callSites.remember(built, passCallSite));
        if (fresh?.has(this as object) === true) fresh.add(built);
      }
    } catch (error) {
      reportFrom(core, 'pass call site', error);
    }
    return built;
  };
}

/**
 * A method that makes a new query object from `this` (a clone): the copy gets the application's
 * call site when the application made it, else the one `this` was built at.
 */
export function derivingCallSite<This, Args extends unknown[], Result>(
  original: Method<This, Args, Result>,
  core: () => AdapterCore,
): Method<This, Args, Result> {
  return function deriveWithCallSite(this: This, ...args: Args): Result {
    const derived = original.apply(this, args);
    try {
      core().callSites.derive(this, derived, deriveWithCallSite);
    } catch (error) {
      reportFrom(core, 'derive call site', error);
    }
    return derived;
  };
}

/**
 * A method that runs a query object (`then`, `run`, `execute`, a transaction's acquire): runs
 * it with the call site remembered for `ownerOf(this)`, so the checkout it makes — now or after
 * awaits inside the library — names the application. Function arguments (the application's
 * `then` handlers, a transaction's body) run outside the carried call site, in the caller's
 * context, so the checkouts they make themselves are their own.
 */
export function runningWithCallSite<This, Args extends unknown[], Result>(
  original: Method<This, Args, Result>,
  core: () => AdapterCore,
  ownerOf: (self: This) => unknown = (self) => self,
): Method<This, Args, Result> {
  return function runWithCallSite(this: This, ...args: Args): Result {
    return runCarried(core, original, this, args, (leaseCore) => leaseCore.callSites.siteOf(ownerOf(this)));
  };
}

/**
 * Which arguments of a carried call are the application's callbacks, to run on the caller's
 * side: every function (`'all'`), none (finders whose function arguments are entity classes,
 * which must stay themselves), or only the last argument (a transaction's body after model
 * classes).
 */
export type CallbackArguments = 'all' | 'none' | 'last';

/**
 * A method the application calls that makes its checkout only later, after awaits inside the
 * library (Prisma's `$transaction`, knex's `batchInsert`, an ORM's finders): runs it with the
 * caller's call site, captured now while the application's frames are live — whether the
 * application awaits the call or returns its promise. Function arguments run on the caller's
 * side, as in {@link runningWithCallSite}. Inside an execution that already carries a call
 * site (the library calling its own entry points: `findOne` → `findAll` → `query`) nothing is
 * captured: the checkout belongs to the outer call, and the capture is paid once per call.
 */
export function carryingCaller<This, Args extends unknown[], Result>(
  original: Method<This, Args, Result>,
  core: () => AdapterCore,
  callbacks: CallbackArguments = 'all',
): Method<This, Args, Result> {
  return function callWithCallSite(this: This, ...args: Args): Result {
    return runCarried(
      core,
      original,
      this,
      args,
      (leaseCore) => {
        if (leaseCore.callSites.current(context.active()) !== undefined) return undefined;
        const site = leaseCore.captureCallSite(callWithCallSite);
        return site?.callSite !== undefined ? site : undefined;
      },
      callbacks,
    );
  };
}

/**
 * Calls `original` with the call site `siteFor` names carried (function arguments on the
 * caller's side), or plainly when there is none or finding it failed: the one way a hook runs
 * a carried library call.
 */
function runCarried<This, Args extends unknown[], Result>(
  core: () => AdapterCore,
  original: Method<This, Args, Result>,
  self: This,
  args: Args,
  siteFor: (leaseCore: AdapterCore) => CapturedStack | undefined,
  callbacks: CallbackArguments = 'all',
): Result {
  let carried: { run: () => Result } | undefined;
  try {
    const leaseCore = core();
    const site = siteFor(leaseCore);
    if (site !== undefined) {
      const callSites = leaseCore.callSites;
      const last = args.length - 1;
      const callerArgs = args.map((arg, index) =>
        typeof arg === 'function' && (callbacks === 'all' || (callbacks === 'last' && index === last)) ? callSites.callerSide(arg as () => unknown) : arg,
      ) as Args;
      carried = { run: () => callSites.run(site, () => original.apply(self, callerArgs)) };
    }
  } catch (error) {
    reportFrom(core, 'carry call site', error);
  }
  return carried === undefined ? original.apply(self, args) : carried.run();
}

/** Marks our `then` accessors with the data property they replaced. */
const REPLACED = Symbol('pool-leak replaced then');

type ThenAccessor = (() => unknown) & { [REPLACED]?: PropertyDescriptor };

/**
 * Hooks on the `then` of thenable query objects whose library builds them in too many places
 * to hook each (Drizzle). `await query`, `return query` from an async function and
 * `Promise.resolve(query)` read `query.then` synchronously, in the application's frame, and
 * call it a promise job later: a `then` accessor remembers the reader's call site on the query
 * and returns `then` wrapped by {@link runningWithCallSite}. An assignment to `query.then` still
 * makes an own property, as it did on the data property.
 *
 * One instance per instrumentation instance; it keeps what it replaced, to put it back.
 */
export class ThenReadHooks {
  private readonly replaced = new Map<object, PropertyDescriptor>();

  /**
   * @param fresh queries whose call site was taken where they were built: read in the same
   * synchronous run, they keep it (see {@link FreshBuilds}); others take the reader's.
   */
  constructor(
    private readonly core: () => AdapterCore,
    private readonly fresh?: FreshBuilds,
  ) {}

  /**
   * Replaces `prototype.then` (an own method, or our accessor that a library copied there from
   * a patched class, as Drizzle's mixins do) by an accessor. Idempotent.
   */
  patch(prototype: object): void {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, 'then');
    if (descriptor === undefined || descriptor.configurable !== true) return;
    const original = (descriptor.get as ThenAccessor | undefined)?.[REPLACED] ?? descriptor;
    if (typeof original.value !== 'function') return;
    if (this.replaced.has(prototype)) return;
    const { core, fresh } = this;
    const runThen = runningWithCallSite(original.value as Method<unknown, unknown[], unknown>, core);
    const readThen: ThenAccessor = function readThen(this: unknown) {
      try {
        if (fresh === undefined || !fresh.has(this as object)) core().callSites.remember(this, readThen);
      } catch (error) {
        reportFrom(core, 'remember call site', error);
      }
      return runThen;
    };
    readThen[REPLACED] = original;
    Object.defineProperty(prototype, 'then', {
      get: readThen,
      set(this: object, value: unknown) {
        Object.defineProperty(this, 'then', { value, writable: true, enumerable: true, configurable: true });
      },
      enumerable: original.enumerable === true,
      configurable: true,
    });
    this.replaced.set(prototype, original);
  }

  /** Puts back the method `patch` replaced on `prototype`. */
  unpatch(prototype: object): void {
    const original = this.replaced.get(prototype);
    if (original === undefined) return;
    Object.defineProperty(prototype, 'then', original);
    this.replaced.delete(prototype);
  }

  /** Whether `prototype.then` is one of our accessors (tests, diagnostics). */
  static isPatched(prototype: object): boolean {
    const getter = Object.getOwnPropertyDescriptor(prototype, 'then')?.get as ThenAccessor | undefined;
    return getter?.[REPLACED] !== undefined;
  }
}

/**
 * Wraps each of `names` that `target` has (own or inherited: wrapped where it is defined) with
 * {@link carryingCaller}: an ORM's public entry points, whose checkouts come after its awaits.
 */
export function carryingEntryPoints(
  hook: MethodHook,
  target: object,
  names: readonly string[],
  core: () => AdapterCore,
  callbacks: CallbackArguments,
): void {
  const methods = target as Record<string, unknown>;
  for (const name of names) {
    if (typeof methods[name] !== 'function') continue;
    hookWhereDefined(hook, methods, name, (original) => carryingCaller(original as Method<unknown, unknown[], unknown>, core, callbacks));
  }
}
