// The OpenTelemetry SDK of the demo, wired the way an application would: NodeSDK with the
// pool-leak instrumentation and three span exporters side by side (leak report, OTLP/JSON file,
// OTLP/HTTP protobuf), plus OTLP metrics and, when asked, a Prometheus endpoint. Must start before
// anything requires `pg`.
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { PeriodicExportingMetricReader, type MetricReader } from '@opentelemetry/sdk-metrics';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { PoolLeakInstrumentation } from 'opentelemetry-instrumentation-pool-leak';
import { countingMetricExporter, CountingSpanExporter, type ExportStats } from './export-stats';
import { LeakReportExporter } from './leak-report-exporter';
import { OtlpJsonFileExporter } from './otlp-json-file-exporter';
import type { OtlpEndpoint } from './otlp-endpoint';

export const SERVICE_NAME = 'pool-leak-demo';

export interface TelemetryOptions {
  readonly leakThresholdMs: number;
  /** `waitThresholdMs` of the instrumentation: checkouts waiting longer are reported while they wait. */
  readonly waitThresholdMs: number;
  readonly outputPath: string;
  /** Where to send OTLP; undefined when nothing listens there. */
  readonly otlp: OtlpEndpoint | undefined;
  readonly metricIntervalMs: number;
  /** Serve `/metrics` for Prometheus on 127.0.0.1 at this port; undefined = no endpoint. */
  readonly prometheusPort?: number | undefined;
  /** Register `@opentelemetry/instrumentation-pg` too (its pool gauges then stand in for ours). */
  readonly contribPg?: boolean | undefined;
}

export interface Telemetry {
  readonly serviceName: string;
  readonly leakReport: LeakReportExporter;
  readonly file: OtlpJsonFileExporter;
  readonly otlp: { readonly endpoint: OtlpEndpoint; readonly traces: ExportStats; readonly metrics: ExportStats } | undefined;
  /** Ends open leases (ERROR, so they are exported), then flushes every exporter. */
  shutdown(): Promise<void>;
}

const OTLP_TIMEOUT_MS = 5000;
/**
 * The file gets one line per batch. Batches this large (and a long delay) make a demo run one
 * line, which `curl -d @file` can post whole; longer runs still stream a line per 2048 spans,
 * so memory stays bounded.
 */
const FILE_BATCH = { maxQueueSize: 2048, maxExportBatchSize: 2048, scheduledDelayMillis: 60_000 };

export function startTelemetry(options: TelemetryOptions): Telemetry {
  const serviceName = process.env['OTEL_SERVICE_NAME']?.trim() || SERVICE_NAME;
  const leakReport = new LeakReportExporter();
  const file = new OtlpJsonFileExporter(options.outputPath);
  const spanProcessors: SpanProcessor[] = [
    // Aggregates only; simple processing keeps the report exact without a queue that could drop.
    new SimpleSpanProcessor({ exporter: leakReport }),
    new BatchSpanProcessor({ exporter: file, ...FILE_BATCH }),
  ];
  let otlp: Telemetry['otlp'];
  const metricReaders: MetricReader[] = [];
  if (options.otlp !== undefined) {
    const traces = new CountingSpanExporter(new OTLPTraceExporter({ url: options.otlp.traces, timeoutMillis: OTLP_TIMEOUT_MS }));
    const metrics = countingMetricExporter(new OTLPMetricExporter({ url: options.otlp.metrics, timeoutMillis: OTLP_TIMEOUT_MS }));
    spanProcessors.push(new BatchSpanProcessor({ exporter: traces, scheduledDelayMillis: 1000 }));
    metricReaders.push(
      new PeriodicExportingMetricReader({
        exporter: metrics.exporter,
        exportIntervalMillis: options.metricIntervalMs,
        exportTimeoutMillis: Math.min(OTLP_TIMEOUT_MS, options.metricIntervalMs),
      }),
    );
    otlp = { endpoint: options.otlp, traces: traces.stats, metrics: metrics.stats };
  }
  if (options.prometheusPort !== undefined) metricReaders.push(prometheusReader(options.prometheusPort));
  const sdk = new NodeSDK({
    serviceName,
    instrumentations: [
      new PoolLeakInstrumentation({ leakThresholdMs: options.leakThresholdMs, waitThresholdMs: options.waitThresholdMs }),
      ...(options.contribPg === true ? [new PgInstrumentation()] : []),
    ],
    spanProcessors,
    // Explicitly empty: left out, NodeSDK would build OTLP metric and log exporters from the
    // environment and send to localhost:4318 even when the probe found nothing there.
    metricReaders,
    logRecordProcessors: [],
  });
  sdk.start();
  return { serviceName, leakReport, file, otlp, shutdown: () => sdk.shutdown() };
}

/**
 * A pull reader: Prometheus scrapes the metrics at collection time, so they are as fresh as the
 * scrape. Loopback only, like every server the demo starts. A port in use is said on stderr; the
 * demo runs on without the endpoint.
 */
function prometheusReader(port: number): MetricReader {
  const host = '127.0.0.1';
  return new PrometheusExporter({ host, port }, (error) => {
    process.stderr.write(
      error
        ? `[demo] Prometheus: cannot serve /metrics on ${host}:${port} (${error.message}); choose another --prometheus-port\n`
        : `[demo] Prometheus: metrics on http://${host}:${port}/metrics\n`,
    );
  });
}
