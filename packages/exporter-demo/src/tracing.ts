// Tracing for the demo process. Imported before anything loads `pg`, so the pool is patched.
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { PoolLeakInstrumentation } from 'opentelemetry-instrumentation-pool-leak';
import { LeakReportExporter } from './leak-report-exporter';

export const leakReport = new LeakReportExporter();
export const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: leakReport })] });

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(tracerProvider);

export const poolLeakInstrumentation = new PoolLeakInstrumentation();
