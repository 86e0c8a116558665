// Counts what an exporter really delivered. A reachable port says nothing about whether the
// endpoint accepted the data (Jaeger answers /v1/metrics with 404, for instance), and the SDK
// reports export failures only through diag, which the demo leaves silent.
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';

/** Outcome of every export call of one exporter. */
export class ExportStats {
  /** Spans, or metric data points, that the endpoint accepted. */
  delivered = 0;
  failedExports = 0;
  okExports = 0;
  lastError: string | undefined;

  record(result: ExportResult, items: number): void {
    if (result.code === ExportResultCode.SUCCESS) {
      this.okExports++;
      this.delivered += items;
    } else {
      this.failedExports++;
      this.lastError = result.error?.message ?? 'export failed';
    }
  }
}

/** A SpanExporter that forwards to `inner` and counts the outcome. */
export class CountingSpanExporter implements SpanExporter {
  readonly stats = new ExportStats();

  constructor(private readonly inner: SpanExporter) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      this.stats.record(result, spans.length);
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** A PushMetricExporter that forwards to `inner` (temporality and aggregation too) and counts. */
export function countingMetricExporter(inner: PushMetricExporter): { exporter: PushMetricExporter; stats: ExportStats } {
  const stats = new ExportStats();
  const exporter: PushMetricExporter = {
    export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void) {
      const points = metrics.scopeMetrics.reduce(
        (sum, scope) => sum + scope.metrics.reduce((inScope, metric) => inScope + metric.dataPoints.length, 0),
        0,
      );
      inner.export(metrics, (result) => {
        stats.record(result, points);
        resultCallback(result);
      });
    },
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
  };
  // The reader asks the exporter which temporality and aggregation it wants; keep the answers.
  if (inner.selectAggregationTemporality !== undefined) {
    exporter.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
  }
  if (inner.selectAggregation !== undefined) exporter.selectAggregation = inner.selectAggregation.bind(inner);
  return { exporter, stats };
}
