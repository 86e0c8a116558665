import type { DiagLogger, Meter, Tracer, TracerProvider } from '@opentelemetry/api';
import { NO_STACK_CAPTURE, type StackCapture } from '../call-site/stack';
import type { PoolMetricsMode } from '../signals/metrics';

/** What can change with the configuration. */
export interface LeaseCoreSettings {
  readonly stackCapture: StackCapture;
  readonly checkinStackCapture: StackCapture;
  /** 0 = leak detection off. */
  readonly leakThresholdMs: number;
  /** 0 = stalled-waiter detection off. */
  readonly waitThresholdMs: number;
  readonly maxMetricCallSites: number;
  /** Append the holders to the message of a pool's own exhausted error (`poolHolders` is always set). */
  readonly enrichErrors: boolean;
  /** Which `db.client.connection.*` instruments are reported (see {@link PoolMetricsMode}). */
  readonly poolMetrics: PoolMetricsMode;
}

export interface LeaseCoreOptions {
  /** The tracer to start checkout spans with; read on every checkout (it may be replaced). */
  readonly tracer: () => Tracer;
  /** The provider whose shutdown must first end open leases; read until one is hooked. */
  readonly tracerProvider: () => TracerProvider;
  readonly meter: Meter;
  readonly settings?: Partial<LeaseCoreSettings>;
  readonly diag?: DiagLogger;
}

/** What a core made without settings does: no stacks, no leak or stall watch, every gauge it may. */
export const CORE_SETTINGS_UNSET: LeaseCoreSettings = {
  stackCapture: NO_STACK_CAPTURE,
  checkinStackCapture: NO_STACK_CAPTURE,
  leakThresholdMs: 0,
  waitThresholdMs: 0,
  maxMetricCallSites: 100,
  enrichErrors: false,
  poolMetrics: 'auto',
};
