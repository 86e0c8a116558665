export { PoolLeakInstrumentation } from './instrumentation';
export { POOL_LIBRARIES } from './types';
export type { PoolLeakInstrumentationConfig, PoolLibrary, PoolMetricsMode } from './types';
export * from './signals/semconv';
