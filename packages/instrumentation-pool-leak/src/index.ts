export { PoolLeakInstrumentation } from './instrumentation';
export { POOL_LIBRARIES } from './types';
export type { PoolLeakInstrumentationConfig, PoolLibrary } from './types';
export * from './signals/semconv';
