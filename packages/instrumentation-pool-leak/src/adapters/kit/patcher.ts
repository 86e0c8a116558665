import { types } from 'node:util';
import type { Patcher } from './adapter';

/** Shimmer's marker of the function a wrapper replaced (set by every contrib instrumentation). */
const SHIMMER_ORIGINAL = '__original';
/** Shimmer's unwrap calls this on the function on top of a method. */
const SHIMMER_UNWRAP = '__unwrap';
/** With the two above, what `isWrapped` looks for. */
const SHIMMER_WRAPPED = '__wrapped';
/** How far down a chain of other instrumentations' wrappers we look for our own. */
const MAX_CHAIN = 16;
/** Our own marker on a wrapper, beside shimmer's. */
const POOL_LEAK_ORIGINAL = Symbol.for('opentelemetry-instrumentation-pool-leak.original');

/** Whether `fn` is a wrapper this package put on a library method. */
export function isPatchedByPoolLeak(fn: unknown): boolean {
  return typeof fn === 'function' && POOL_LEAK_ORIGINAL in fn;
}

/** Our wrapper of one method, and what it wraps. */
interface Installed {
  /** The method our wrapper calls (what was there when it was built). */
  readonly next: Function;
  readonly wrapped: Function;
}

/** The adapter's wrapper factory, as the patcher stores it to wrap again. */
type WrapperFactory = (original: Function) => unknown;

/**
 * Wraps library methods so that this instrumentation and the contrib ones can patch the same
 * method in either order, and either can be disabled without taking the other off.
 *
 * `InstrumentationBase._wrap` first takes off any shimmer wrapper already in place
 * (`isWrapped → _unwrap`), and `_unwrap` restores whatever is under the wrapper on top, so two
 * instrumentations of one method (instrumentation-pg and ours on pg-pool's `connect`) silently
 * remove each other. Therefore:
 *
 * - we never take off another's wrapper: ours goes on top of whatever is there;
 * - our wrapper carries shimmer's markers, and its `__unwrap` (which shimmer calls on the function
 *   on top when an instrumentation unwraps or re-wraps; contrib ones patch some methods twice and
 *   rely on "isWrapped → _unwrap → _wrap" to stay single) takes out the shimmer wrapper directly
 *   beneath ours — by wrapping what lies beneath that one afresh — never ours. Our wrapper calls
 *   the method it wrapped directly: nothing is added to a call;
 * - unwrapping ours restores the method only while ours is outermost. With another wrapper around
 *   it, removing ours would remove theirs: ours stays in their chain and passes through, because
 *   a stopped lease core starts no lease. Enabling again re-uses it instead of stacking another.
 */
export function createPatcher(onError: (where: string, error: unknown) => void): Patcher {
  /** Our wrapper per patched method, until it is taken off again. */
  const installed = new WeakMap<object, Map<PropertyKey, Installed>>();

  const entryOf = (target: object, name: PropertyKey): Installed | undefined => installed.get(target)?.get(name);
  const inPlace = (target: object, name: PropertyKey, entry: Installed): boolean => {
    const current: unknown = (target as Record<PropertyKey, unknown>)[name];
    return current === entry.wrapped || chainHolds(current, entry.wrapped);
  };

  /** Puts our wrapper of `next` on `target[name]`. */
  const install = (target: object, name: PropertyKey, next: Function, wrapper: WrapperFactory): void => {
    const wrapped = wrapper(next);
    // A factory that hands back the method itself wraps nothing: leave the method unmarked.
    if (typeof wrapped !== 'function' || wrapped === next) return;
    Object.defineProperty(wrapped, POOL_LEAK_ORIGINAL, { configurable: true, value: true });
    Object.defineProperty(wrapped, SHIMMER_WRAPPED, { configurable: true, value: true });
    Object.defineProperty(wrapped, SHIMMER_ORIGINAL, { configurable: true, value: next });
    Object.defineProperty(wrapped, SHIMMER_UNWRAP, {
      configurable: true,
      value: () => {
        try {
          const beneath = (next as unknown as Record<string, unknown>)[SHIMMER_ORIGINAL];
          const current: unknown = (target as Record<PropertyKey, unknown>)[name];
          if (typeof beneath === 'function' && current === wrapped) install(target, name, beneath, wrapper);
        } catch (error) {
          onError(`unwrap beneath ${String(name)}`, error);
        }
      },
    });
    defineMethod(target, name, wrapped);
    let methods = installed.get(target);
    if (methods === undefined) installed.set(target, (methods = new Map()));
    methods.set(name, { next, wrapped });
  };

  return {
    wrap(target, name, wrapper) {
      try {
        const current: unknown = target[name];
        if (typeof current !== 'function') return;
        const entry = entryOf(target, name);
        if (entry !== undefined && inPlace(target, name, entry)) return;
        install(target, name, current, wrapper as unknown as WrapperFactory);
      } catch (error) {
        onError(`wrap ${String(name)}`, error);
      }
    },

    unwrap(target, name) {
      try {
        const entry = entryOf(target, name);
        if (entry === undefined || target[name] !== entry.wrapped) return;
        defineMethod(target, name, entry.next);
        installed.get(target)?.delete(name);
      } catch (error) {
        onError(`unwrap ${String(name)}`, error);
      }
    },

    isPatched(target, name) {
      const entry = entryOf(target, name);
      return entry !== undefined && inPlace(target, name, entry);
    },
  };
}

/** Whether `wrapped` lies beneath `outer` in a chain of shimmer wrappers. */
function chainHolds(outer: unknown, wrapped: Function): boolean {
  let link: unknown = outer;
  for (let depth = 0; depth < MAX_CHAIN && typeof link === 'function'; depth += 1) {
    if (link === wrapped) return true;
    link = (link as unknown as Record<string, unknown>)[SHIMMER_ORIGINAL];
  }
  return false;
}

/** Replaces a method keeping its enumerability, as shimmer does; ES module namespaces are proxies. */
function defineMethod(target: object, name: PropertyKey, value: unknown): void {
  if (types.isProxy(target)) {
    Object.defineProperty(target, name, { value });
    return;
  }
  const enumerable = Object.prototype.propertyIsEnumerable.call(target, name);
  Object.defineProperty(target, name, { configurable: true, enumerable, writable: true, value });
}
