// The closing lines of `npm run demo`: what the load did, and where the traces went (or why not).
import { isAbsolute, relative } from 'node:path';
import type { DemoOptions } from './cli';
import type { ExportStats } from './export-stats';
import type { LoadSummary } from './load';
import type { RequestPlan } from './request-plan';
import type { Telemetry } from './telemetry';

const JAEGER_UI = 'http://localhost:16686';

/** What each load did: the billing load and the two incidents beside it. */
export interface Loads {
  readonly billing: LoadSummary;
  readonly catalog: LoadSummary;
  readonly carts: LoadSummary;
  /** The one slow cart-totals query (the report's busy holder). */
  readonly slowTotals: LoadSummary;
}

export interface SummaryInput {
  readonly options: DemoOptions;
  /** What the run meant to send (the announcement and the progress bar said the same). */
  readonly requests: RequestPlan;
  readonly loads: Loads | undefined;
  /** Connections still checked out when the service stopped. */
  readonly leakedAtEnd: number;
  readonly telemetry: Telemetry;
}

export function formatSummary({ options, requests, loads, leakedAtEnd, telemetry }: SummaryInput): string {
  const lines = ['Summary'];
  if (loads !== undefined) {
    const { billing } = loads;
    const sent = billing.sent + loads.catalog.sent + loads.carts.sent + loads.slowTotals.sent;
    const planned = sent === requests.total ? 'all that were planned' : `of ${requests.total} planned`;
    const elapsedMs = Math.max(billing.elapsedMs, loads.catalog.elapsedMs, loads.carts.elapsedMs, loads.slowTotals.elapsedMs);
    lines.push(`  requests: ${sent} sent, ${planned}, in ${(elapsedMs / 1000).toFixed(1)} s`);
    lines.push(`  billing: ${billing.sent} requests: ${outcomesText(billing)}`);
    lines.push(`  catalog rushes: ${loads.catalog.sent} searches: ${outcomesText(loads.catalog)}`);
    lines.push(`  cart checkouts and views: ${loads.carts.sent} requests: ${outcomesText(loads.carts)}`);
    lines.push(`  slow cart totals query (past the leak threshold, then checked in): ${outcomesText(loads.slowTotals)}`);
  }
  lines.push(`  billing pool: ${leakedAtEnd} of ${options.poolSize} connections still checked out when the service stopped`);
  const { otlp, file } = telemetry;
  if (otlp === undefined) {
    lines.push(
      '  OTLP: not exported (nothing was listening). For Jaeger: `docker compose up -d`, run the demo again, ' +
        `open ${JAEGER_UI}; or upload the trace file below.`,
    );
  } else {
    lines.push(`  OTLP traces: ${exportLine(otlp.traces, 'spans', otlp.endpoint.traces)}`);
    lines.push(`  OTLP metrics: ${exportLine(otlp.metrics, 'data points', otlp.endpoint.metrics)}`);
    if (otlp.metrics.okExports === 0 && otlp.metrics.failedExports > 0) {
      lines.push('    (Jaeger keeps traces only; send metrics to an OpenTelemetry Collector or Prometheus to keep them.)');
    }
    if (otlp.traces.delivered > 0) {
      lines.push(`  Jaeger UI (docker-compose.yml): ${JAEGER_UI}/search?service=${encodeURIComponent(telemetry.serviceName)}`);
    }
  }
  const inCwd = relative(process.cwd(), file.path);
  const path = inCwd === '' || inCwd.startsWith('..') || isAbsolute(inCwd) ? file.path : inCwd;
  lines.push(
    `  trace file: ${path} — ${file.spans} spans in ${file.lines} line${file.lines === 1 ? '' : 's'} of OTLP/JSON ` +
      '(Jaeger UI: Search → Upload JSON; replay: see packages/exporter-demo/README.md)',
  );
  return lines.join('\n');
}

/** `190× 200, 36× 503 (timeout exceeded when trying to connect)`: most frequent first. */
function outcomesText(load: LoadSummary): string {
  return [...load.outcomes]
    .sort((a, b) => b[1].count - a[1].count)
    .map(([status, { count, example }]) => (status === '200' || example === undefined ? `${count}× ${status}` : `${count}× ${status} (${example})`))
    .join(', ');
}

function exportLine(stats: ExportStats, items: string, url: string): string {
  if (stats.failedExports === 0) return `${stats.delivered} ${items} accepted by ${url}`;
  const failed = `${stats.failedExports} export${stats.failedExports === 1 ? '' : 's'} failed (${stats.lastError ?? 'unknown error'})`;
  return stats.okExports === 0 ? `NOT accepted by ${url}: ${failed}` : `${stats.delivered} ${items} accepted by ${url}, ${failed}`;
}
