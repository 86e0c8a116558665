// The real OTel SDK for tests: a tracer provider with an in-memory exporter, the async-hooks
// context manager, and one PoolLeakInstrumentation registered against them.
import { context, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { expect } from 'vitest';
import { PoolLeakInstrumentation } from '../../src';
import type { LeaseCore } from '../../src/core/lease-core';
import type { PoolLeakInstrumentationConfig } from '../../src';

export interface TestTracing {
  readonly exporter: InMemorySpanExporter;
  readonly provider: TracerProvider;
  readonly instrumentation: PoolLeakInstrumentation;
  /** A tracer for the test's own "request" spans. */
  readonly tracer: Tracer;
  /** Finished spans with this name, in the order they ended. */
  spansNamed(name: string): ReadableSpan[];
  /** The one finished span with this name; fails the test if there is not exactly one. */
  onlySpanNamed(name: string): ReadableSpan;
  /** Runs `work` inside a fresh active span named `name`, as a request handler would. */
  inRequest<T>(name: string, work: () => Promise<T>): Promise<T>;
  readonly meterProvider: MeterProvider;
  /** Collects now and returns the data points of the metric with this name. */
  metricPoints(name: string): Promise<DataPoint<unknown>[]>;
  /** Leases the instrumentation's core holds open right now (0 before its first checkout). */
  openLeaseCount(): number;
  /**
   * Shuts the tracer provider down and returns every span exported during the shutdown (the
   * in-memory exporter forgets its spans when it shuts down).
   */
  shutdownKeepingExported(): Promise<ReadableSpan[]>;
}

/** The open leases of an instrumentation's lease core, read through its private field. */
export function openLeaseCountOf(instrumentation: PoolLeakInstrumentation): number {
  return (instrumentation as unknown as { core?: LeaseCore }).core?.openLeaseCount ?? 0;
}

/** A reader that exports nothing and collects when asked: tests read values directly. */
class CollectOnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

let contextManagerInstalled = false;

/** Call at module top level, before the pool library is required. */
export function setupTracing(config: PoolLeakInstrumentationConfig = {}): TestTracing {
  if (!contextManagerInstalled) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    contextManagerInstalled = true;
  }
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  trace.setGlobalTracerProvider(provider);
  const reader = new CollectOnDemandReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const instrumentation = new PoolLeakInstrumentation(config);
  instrumentation.setTracerProvider(provider);
  instrumentation.setMeterProvider(meterProvider);
  const tracer = provider.getTracer('pool-leak-tests');
  return {
    exporter,
    provider,
    instrumentation,
    tracer,
    inRequest: (name, work) =>
      tracer.startActiveSpan(name, async (span) => {
        try {
          return await work();
        } finally {
          span.end();
        }
      }),
    spansNamed: (name) => exporter.getFinishedSpans().filter((span) => span.name === name),
    onlySpanNamed(name) {
      const spans = exporter.getFinishedSpans().filter((span) => span.name === name);
      expect(spans.map((span) => span.name)).toEqual([name]);
      return spans[0]!;
    },
    meterProvider,
    openLeaseCount: () => openLeaseCountOf(instrumentation),
    async shutdownKeepingExported() {
      const exported: ReadableSpan[] = [];
      const originalExport = exporter.export.bind(exporter);
      exporter.export = (spans, done) => {
        exported.push(...spans);
        originalExport(spans, done);
      };
      await provider.shutdown();
      return exported;
    },
    async metricPoints(name) {
      const { resourceMetrics } = await reader.collect();
      return resourceMetrics.scopeMetrics
        .flatMap((scope) => scope.metrics)
        .filter((metric) => metric.descriptor.name === name)
        .flatMap((metric) => metric.dataPoints as DataPoint<unknown>[]);
    },
  };
}
