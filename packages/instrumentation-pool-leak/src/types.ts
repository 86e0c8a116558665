import type { InstrumentationConfig } from '@opentelemetry/instrumentation';

import { POOL_LIBRARIES, type PoolLibrary } from './adapters/libraries';

export { POOL_LIBRARIES, type PoolLibrary };
export { POOL_METRICS_MODES, type PoolMetricsMode } from './signals/metrics';
import type { PoolMetricsMode } from './signals/metrics';

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
   * Cost: one stack capture per checkout, of the fewest frames that hold the call path (see
   * `fullStacks` and the package README for the rule and the numbers); at most this many.
   */
  stackFrames?: number;

  /**
   * `true` captures `stackFrames` frames on every checkout, so `code.stacktrace` always shows the
   * whole capped stack. `false` captures a small window of frames and widens it only while it
   * does not yet hold the application's call path; the stack shown is then shorter, but every
   * frame in it is still this checkout's own.
   *
   * Default `false`; environment `OTEL_POOL_LEAK_FULL_STACKS` (`true` / `false`). Cost: about
   * 0.5 µs per captured frame on a small VM, so ~25 µs per checkout at 50 frames instead of
   * ~4 µs for a direct caller.
   */
  fullStacks?: boolean;

  /**
   * Frames kept in `pool.checkin.stacktrace` on the `pool.checkin.finalizer` and
   * `pool.checkin.loop_tick` events (and `pool.release.stacktrace`). `0` = no checkin stack.
   *
   * Default `30`; environment `OTEL_POOL_LEAK_CHECKIN_STACK_FRAMES`. Cost: paid only when one
   * of those events fires.
   */
  checkinStackFrames?: number;

  /**
   * A lease held longer than this many milliseconds is reported once: event
   * `pool.leak.suspected` on its checkout span, a `<library> leak` span exported at once, and the
   * `pool.leak.suspected` counter. `0` turns leak detection off.
   *
   * Default `30000`; environment `OTEL_POOL_LEAK_THRESHOLD_MS`. Cost: one shared, unref'd timer
   * that looks only at leases that have expired; nothing per checkout beyond a Set insert.
   */
  leakThresholdMs?: number;

  /**
   * A checkout still waiting for a connection after this many milliseconds is reported once,
   * while it waits: a `<library> wait.stalled` span exported at once (the waiter's call site,
   * `pool.wait_ms`, `pool.pending`, `db.client.connection.max`, the holders and
   * `pool.exhaustion.cause`), the `pool.wait.stalled` event on its checkout span when that span
   * starts, and the `pool.wait.stalled` counter. pg-pool, mysql2 and generic-pool wait forever by
   * default, so this may be the only sign of an exhausted pool. `0` turns it off. Changes with
   * `setConfig` apply to the checkouts already waiting.
   *
   * Default `5000`; environment `OTEL_POOL_LEAK_WAIT_THRESHOLD_MS`. Cost: a Set insert and
   * delete per checkout, one shared unref'd timer that looks only at waiters past the threshold,
   * and per sweep one holders list per starved pool, however many wait.
   */
  waitThresholdMs?: number;

  /**
   * Distinct call sites (`code.function.name`, `code.file.path`, `code.line.number`,
   * `pool.call_path`) the `pool.leak.suspected`, `pool.use.foreign_context` and `pool.wait.stalled` counters keep apart; the rest are counted under
   * `code.function.name="_OTHER"`. Default `100`.
   */
  maxMetricCallSites?: number;

  /**
   * Adapters to enable. Libraries not listed are not patched at all.
   *
   * Default: all of {@link POOL_LIBRARIES}; environment `OTEL_POOL_LEAK_LIBRARIES`
   * (comma-separated, e.g. `pg-pool,mysql2`).
   */
  libraries?: PoolLibrary[];

  /**
   * `true` appends the current holders to the message of the pool's own timeout / exhausted
   * error that the application receives, so the log line it already writes names the culprit:
   * `"timeout exceeded when trying to connect; pool holders: set (lib/store.js:22) held 2651 ms
   * — idle 2600 ms in transaction, last INSERT entries"`. The same strings are always on the
   * error's non-enumerable `poolHolders` property, which `message`, `stack`, `JSON.stringify`
   * and `util.inspect` do not show; with `false` the error is otherwise untouched.
   *
   * Default `false`; environment `OTEL_POOL_LEAK_ENRICH_ERRORS` (`true` / `false`). Cost: only
   * when a checkout fails because the pool is exhausted.
   */
  enrichErrors?: boolean;

  /**
   * Which semconv `db.client.connection.*` instruments pool-leak reports. `'auto'`: all of them,
   * except, per pool, those another instrumentation already reports for that pool (see the
   * package README, "One set of pool metrics per pool": instrumentation-pg's gauges for a pg
   * pool it has patched, node-redis's own metrics for a redis pool). `'all'`: every one, even
   * where that duplicates another instrumentation's series. `'own'`: none of them, only
   * `pool.leak.suspected`, `pool.use.foreign_context` (and the other `pool.*` counters).
   *
   * Default `'auto'`; environment `OTEL_POOL_LEAK_POOL_METRICS` (`auto` / `all` / `own`). Cost:
   * in `auto`, one look at the pool object per instrument until pool-leak has reported it once.
   */
  poolMetrics?: PoolMetricsMode;
}
