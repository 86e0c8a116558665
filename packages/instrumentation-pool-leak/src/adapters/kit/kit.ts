import { InstrumentationNodeModuleDefinition, InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import { commonJsExports, type AdapterContext, type Patcher, type PoolAdapter } from './adapter';
import type { Lease, LeaseCore, PoolProbe, ReleasePolicy } from '../../core';

/**
 * The adapter kit: the plumbing every pool adapter needs, written once. An adapter names its
 * library's acquire and release points and how to read its pool ({@link PoolProbe}); the kit
 * turns them into lease calls that leave the application's results, errors, callback and
 * promise shapes and `this` exactly as they were.
 */

/** A library method as the kit wraps it: `this` and arguments are forwarded untouched. */
export type Method<This, Args extends unknown[], Result> = (this: This, ...args: Args) => Result;

/** The part of the lease core adapters use. */
export type AdapterCore = Pick<
  LeaseCore,
  | 'checkout'
  | 'leaseOf'
  | 'releaseConnection'
  | 'statementIssued'
  | 'captureCallSite'
  | 'withCallSite'
  | 'callSites'
  | 'reportError'
  | 'poolEnded'
>;

/** Puts a wrapper on `target[name]` (patching) or takes it off again (unpatching). */
export type MethodHook = <Target extends object, Name extends keyof Target>(
  target: Target,
  name: Name,
  wrapper: (original: Target[Name]) => Target[Name],
) => void;

/**
 * Names the methods an adapter wraps in one module: called with a hook that wraps on patch and
 * with one that unwraps on unpatch, so the two lists can never drift apart. Keep it free of
 * other side effects (it also runs on unpatch).
 */
export type MethodList<Exports> = (moduleExports: Exports, hook: MethodHook) => void;

/** What one instrumentation instance gives its adapter; everything per instance lives in here. */
export interface AdapterKit {
  /** The lease core, created on first use. */
  readonly core: () => AdapterCore;
  readonly patcher: Patcher;
  /** A module whose exports (CommonJS or ES namespace) get the methods `methods` names wrapped. */
  module<Exports>(
    name: string,
    versions: string[],
    methods?: MethodList<Exports>,
    files?: InstrumentationNodeModuleFile[],
  ): InstrumentationNodeModuleDefinition;
  /** A file inside a module, as {@link AdapterKit.module}. */
  file<Exports>(name: string, versions: string[], methods: MethodList<Exports>): InstrumentationNodeModuleFile;
}

/**
 * Defines an adapter. `definitions` runs once per instrumentation instance: state the adapter
 * keeps (a WeakMap of pools it described, error classes it saw) belongs in its closure, never
 * at module level.
 */
export function defineAdapter(definitions: (kit: AdapterKit) => InstrumentationNodeModuleDefinition[]): PoolAdapter {
  return { moduleDefinitions: (context) => definitions(kitFor(context)) };
}

/** The kit of one instrumentation instance. */
export function kitFor({ core, patcher }: AdapterContext): AdapterKit {
  /**
   * The instrumentation base keeps only the exports of the copy of a module loaded last, and
   * unpatches (on disable) and patches again (on enable) only that one: every copy seen is
   * remembered here (one entry per installed copy of the module), and all of them follow.
   */
  const patchable = <Exports>(methods: MethodList<Exports>) => {
    const copies = new Set<Exports>();
    return {
      patch(moduleExports: Exports): Exports {
        copies.add(commonJsExports<Exports>(moduleExports));
        for (const exports of copies) methods(exports, patcher.wrap);
        return moduleExports;
      },
      unpatch(): void {
        for (const exports of copies) methods(exports, (target, name) => patcher.unwrap(target, name));
      },
    };
  };
  return {
    core,
    patcher,
    module(name, versions, methods, files) {
      const hooks = methods === undefined ? undefined : patchable(methods);
      return new InstrumentationNodeModuleDefinition(name, versions, hooks?.patch, hooks?.unpatch, files);
    },
    file(name, versions, methods) {
      const hooks = patchable(methods);
      return new InstrumentationNodeModuleFile(name, versions, hooks.patch, hooks.unpatch);
    },
  };
}

/**
 * How an acquire's result is followed: `run` calls the library's own acquire with the caller's
 * arguments, or with `args` in their place (a wrapped callback), marking the lease failed and
 * rethrowing if it throws; the follower returns what the application gets.
 */
export type AcquireFollower<Pool, Args extends unknown[], Result> = (lease: Lease, run: (args?: Args) => Result, pool: Pool, args: Args) => Result;

/**
 * Wraps an acquire point: a lease per call (child of the caller's context, call site above this
 * wrapper), then `follow` decides how the result reports grant or failure. If the core fails to
 * start a lease the call passes straight through.
 */
export function acquiring<Pool extends object, Args extends unknown[], Result>(
  core: () => AdapterCore,
  probe: PoolProbe<Pool>,
  original: Method<Pool, Args, Result>,
  follow: AcquireFollower<Pool, Args, Result>,
): Method<Pool, Args, Result> {
  const acquire = function acquire(this: Pool, ...args: Args): Result {
    const lease = core().checkout(this, probe, acquire);
    if (lease === undefined) return original.apply(this, args);
    return follow(lease, (replaced = args) => failingOnThrow(lease, original, this, replaced), this, args);
  };
  return withLengthOf(original, acquire);
}

/** `wrapper` with the `length` of the method it wraps, which some code reads. */
export function withLengthOf<Wrapper extends Function>(original: Function, wrapper: Wrapper): Wrapper {
  Object.defineProperty(wrapper, 'length', { configurable: true, value: original.length });
  return wrapper;
}

/** Calls `original`; a synchronous throw fails the lease and reaches the caller unchanged. */
export function failingOnThrow<This, Args extends unknown[], Result>(lease: Lease, original: Method<This, Args, Result>, self: This, args: Args): Result {
  try {
    return original.apply(self, args);
  } catch (error) {
    lease.failed(error);
    throw error;
  }
}

/** Marks the lease granted with the resource the pool lent (an adapter may wrap it first). */
export type Grant<Resource> = (lease: Lease, resource: Resource) => void;

const grantResource: Grant<unknown> = (lease, resource) => lease.granted(resource);

/** How {@link followPromise} follows: define these once per adapter, not per call. */
export interface FollowOptions<Resource> {
  /**
   * Leave the application the very promise the library returned, with a branch of ours beside
   * it. Only when the library already handles that promise itself: a branch of ours would
   * otherwise mark an unhandled rejection handled.
   */
  readonly beside?: boolean;
  readonly grant?: Grant<Resource>;
}

/** {@link FollowOptions} for a promise the library already handles. */
export const BESIDE: FollowOptions<unknown> = { beside: true };

/**
 * Follows an acquire promise to grant (the resolved value is the leased resource) or failure.
 * By default the application gets a promise chained on the library's, which settles the same
 * way one microtask later and is unhandled exactly when the application ignores it (the safe
 * choice when nobody else handles the library's promise); see {@link FollowOptions.beside}.
 * A result that is not a thenable fails the lease and is returned as it is.
 */
export function followPromise<Result, Resource = unknown>(lease: Lease, result: Result, options?: FollowOptions<Resource>): Result {
  if (!isThenable(result)) {
    lease.failed(new Error('acquire returned no promise'));
    return result;
  }
  const grant = (options?.grant ?? grantResource) as Grant<unknown>;
  if (options?.beside === true) {
    result.then(
      (resource) => grant(lease, resource),
      (error: unknown) => lease.failed(error),
    );
    return result;
  }
  return result.then(
    (resource) => {
      grant(lease, resource);
      return resource;
    },
    (error: unknown) => {
      lease.failed(error);
      throw error;
    },
  ) as Result;
}

/** A Node-style acquire callback: `(error, resource, ...rest)`. */
export type AcquireCallback<Resource, Rest extends unknown[] = unknown[]> = (this: unknown, error: unknown, resource?: Resource, ...rest: Rest) => unknown;

/**
 * The application's acquire callback, reporting grant or failure first and then running in the
 * caller's context (pools that queue waiters call it from another request's context). `this`
 * and the arguments reach the callback as the pool gave them; `grant` may replace some in
 * `args` (pg-pool's release of this checkout). A falsy `error` with a resource is a grant.
 */
export function leasedCallback<Resource, Rest extends unknown[]>(
  lease: Lease,
  callback: AcquireCallback<Resource, Rest>,
  grant: (lease: Lease, resource: Resource, args: Parameters<AcquireCallback<Resource, Rest>>) => void = (leased, resource) =>
    leased.granted(resource),
): AcquireCallback<Resource, Rest> {
  return function onAcquired(this: unknown, ...args: Parameters<AcquireCallback<Resource, Rest>>): unknown {
    const [error, resource] = args;
    if (error) lease.failed(error);
    else if (resource !== undefined && resource !== null) grant(lease, resource, args);
    return lease.runInCallerContext(callback, this, args);
  };
}

/** A statement's Node-style callback, after the lease notes that the statement settled (failed when given an error). */
export function settlingCallback<This, Args extends unknown[], Result>(lease: Lease, callback: Method<This, Args, Result>): Method<This, Args, Result> {
  return function settled(this: This, ...args: Args): Result {
    lease.statementSettled(args[0] !== null && args[0] !== undefined);
    return callback.apply(this, args);
  };
}

/**
 * A statement's promise, chained so that the lease notes the statement settled first; the
 * application gets the chain, which settles the same way. Anything else settles at once.
 */
export function settleOnPromise<Result>(lease: Lease, result: Result): Result {
  if (!isThenable(result)) {
    lease.statementSettled();
    return result;
  }
  return result.then(
    (value) => {
      lease.statementSettled();
      return value;
    },
    (error: unknown) => {
      lease.statementSettled(true);
      throw error;
    },
  ) as Result;
}

/** When a release point reports the checkin, and what the library's answer means. */
export interface ReleaseOptions<Pool, Args extends unknown[], Result> {
  /** Whether `pool` lent `resource` (asked while its lease is held); false → `foreign` event. */
  readonly lent?: (pool: Pool, resource: unknown) => boolean;
  /** The pool also releases resources itself (idle reaping): a lease that ended is no mistake. */
  readonly onlyHeld?: boolean;
  /** `destroy`-style release points: the resource does not go back to the pool. */
  readonly destroyed?: boolean;
  /** The argument that is the resource; the first by default. */
  readonly resourceOf?: (args: Args) => unknown;
  /**
   * Report the checkin after the library ran, from its answer: false means the pool refused a
   * resource it did not lend (a `foreign` invalid release while the lease is held). For
   * libraries that tell by their result; a throw counts as taken back. Without it, the checkin
   * is reported before the library runs (and `lent`, if given, asks the pool then).
   */
  readonly lentAfter?: (result: Result) => boolean;
}

const REFUSED: ReleasePolicy = { lent: () => false };

/**
 * Wraps a release point that takes the resource. The core looks the lease up once and applies
 * the policy (see {@link ReleasePolicy}): held → checkin; already ended → `double_release` or
 * `destroyed` event; unknown → left alone. The library's own call, result and errors are unchanged.
 */
export function releasing<Pool extends object, Args extends unknown[], Result>(
  core: () => AdapterCore,
  original: Method<Pool, Args, Result>,
  options: ReleaseOptions<Pool, Args, Result> = {},
): Method<Pool, Args, Result> {
  const destroyed = options.destroyed === true;
  const { resourceOf, lentAfter } = options;
  // The core hands back the pool object it was given: `this` of this very wrapper.
  const policy = { lent: options.lent, onlyHeld: options.onlyHeld } as ReleasePolicy;
  const report = (pool: Pool, args: Args, used: ReleasePolicy, boundary: Function): void => {
    try {
      core().releaseConnection(resourceOf === undefined ? args[0] : resourceOf(args), destroyed, boundary, pool, used);
    } catch (error) {
      reportFrom(core, 'release', error);
    }
  };
  if (lentAfter !== undefined) {
    const releaseAfter = function release(this: Pool, ...args: Args): Result {
      let lent = true;
      try {
        const result = original.apply(this, args);
        lent = lentAfter(result);
        return result;
      } finally {
        report(this, args, lent ? policy : REFUSED, release);
      }
    };
    return withLengthOf(original, releaseAfter);
  }
  const releaseBefore = function release(this: Pool, ...args: Args): Result {
    report(this, args, policy, release);
    return original.apply(this, args);
  };
  return withLengthOf(original, releaseBefore);
}

/**
 * The object on `prototype`'s chain that defines `name` itself (a subclass may inherit the
 * method from a base class of another file), or undefined.
 */
export function definerOf<Target extends object>(prototype: Target, name: keyof Target): Target | undefined {
  for (let current: object | null = prototype; current !== null && current !== Object.prototype; current = Object.getPrototypeOf(current)) {
    if (Object.prototype.hasOwnProperty.call(current, name)) return current as Target;
  }
  return undefined;
}

/** {@link MethodHook} applied where `name` is defined on `prototype`'s chain. */
export function hookWhereDefined<Target extends object, Name extends keyof Target>(
  hook: MethodHook,
  prototype: Target,
  name: Name,
  wrapper: (original: Target[Name]) => Target[Name],
): void {
  const definer = definerOf(prototype, name);
  if (definer !== undefined) hook(definer, name, wrapper);
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function'
  );
}

/** Reports an internal error; never throws, even when the core cannot be reached. */
export function reportFrom(core: () => AdapterCore, where: string, error: unknown): void {
  try {
    core().reportError(where, error);
  } catch {
    // Nothing left to report through.
  }
}
