import type { InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import type { LeaseCore } from '../../core';

/** Wraps and unwraps library methods (see patcher.ts: coexists with the contrib instrumentations). */
export interface Patcher {
  wrap<Target extends object, Name extends keyof Target>(
    target: Target,
    name: Name,
    wrapper: (original: Target[Name]) => Target[Name],
  ): void;
  unwrap<Target extends object>(target: Target, name: keyof Target): void;
  /** Whether our wrapper of `target[name]` is in place, outermost or beneath another's. */
  isPatched<Target extends object>(target: Target, name: keyof Target): boolean;
}

/** What an adapter receives: the lease core (created lazily) and the patcher. */
export interface AdapterContext {
  readonly core: () => LeaseCore;
  readonly patcher: Patcher;
}

/**
 * Translates one pool library's acquire and release points into calls on the lease API. An
 * adapter knows nothing about spans, stacks or timing. Built with `defineAdapter` (kit.ts);
 * its library name is its key in `ADAPTERS`.
 */
export interface PoolAdapter {
  moduleDefinitions(context: AdapterContext): InstrumentationNodeModuleDefinition[];
}

/** ESM namespace objects of CommonJS modules carry the exports under `default`. */
export function commonJsExports<T>(moduleExports: T | { default: T }): T {
  const namespace = moduleExports as { [Symbol.toStringTag]?: unknown; default?: T };
  return namespace[Symbol.toStringTag] === 'Module' && namespace.default !== undefined ? namespace.default : (moduleExports as T);
}
