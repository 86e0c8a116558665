import type { InstrumentationConfig } from '@opentelemetry/instrumentation';

/** Pool libraries this instrumentation knows by name (the adapter names of DESIGN.md). */
export const POOL_LIBRARIES = ['pg-pool', 'mysql2', 'mariadb', 'generic-pool', 'tarn'] as const;

/** One of {@link POOL_LIBRARIES}. */
export type PoolLibrary = (typeof POOL_LIBRARIES)[number];

/**
 * Options of {@link PoolLeakInstrumentation}.
 *
 * Every option also has an environment variable. An option given in code wins over its
 * variable, except `OTEL_POOL_LEAK_ENABLED=false`, which always wins: with it nothing is patched.
 */
export interface PoolLeakInstrumentationConfig extends InstrumentationConfig {
  /**
   * Frames kept in the checkout span's `code.stacktrace` (frames of this package removed).
   * `0` captures no stack and sets no `code.*` attributes.
   *
   * Default `50`; environment `OTEL_POOL_LEAK_STACK_FRAMES`.
   *
   * Cost: one small stack capture per checkout (see the package README for the numbers); the
   * full stack is formatted once per distinct call site and then served from a bounded cache.
   */
  stackFrames?: number;

  /**
   * Adapters to enable. Libraries not listed are not patched at all.
   *
   * Default: all of {@link POOL_LIBRARIES}; environment `OTEL_POOL_LEAK_LIBRARIES`
   * (comma-separated, e.g. `pg-pool,mysql2`).
   */
  libraries?: PoolLibrary[];
}
