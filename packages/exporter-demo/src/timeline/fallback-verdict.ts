// The demo's own rule for why a pool ran dry (pool-tally.ts: holders mostly stuck leaks → leaked
// connections, else undersized), for trace files whose spans do not carry `pool.exhaustion.cause`
// yet. It runs the console report's aggregation over the file's spans. Delete this module (and
// its one caller in verdict.ts) once every instrumentation in use writes the cause.
import { SpanStatusCode, type AttributeValue, type Attributes, type HrTime } from '@opentelemetry/api';
import { LeakReportExporter } from '../leak-report-exporter';
import type { ReportSpan } from '../report-span';
import type { TraceAttributes, TraceSpan } from './trace-span';

export type FallbackCause = 'leaked_connections' | 'undersized_pool' | 'ok';

/** The cause per pool name, by the demo's rule. */
export function fallbackCauses(spans: readonly TraceSpan[]): ReadonlyMap<string, FallbackCause> {
  const report = new LeakReportExporter();
  report.record(spans.map(toReportSpan));
  return new Map(
    report.data().pools.map((pool) => [pool.name, pool.verdict.kind === 'leaks' ? 'leaked_connections' : pool.verdict.kind === 'undersized' ? 'undersized_pool' : 'ok']),
  );
}

function toReportSpan(span: TraceSpan): ReportSpan {
  return {
    name: span.name,
    attributes: attributesOf(span.attributes),
    events: span.events.map((event) => ({ name: event.name, time: hrTime(event.timeMs), attributes: attributesOf(event.attributes) })),
    status: span.error ? { code: SpanStatusCode.ERROR, message: span.statusMessage } : { code: SpanStatusCode.UNSET },
    duration: hrTime(Math.max(0, span.endMs - span.startMs)),
  };
}

function attributesOf(attributes: TraceAttributes): Attributes {
  const copy: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) copy[key] = (Array.isArray(value) ? [...value] : value) as AttributeValue;
  return copy;
}

function hrTime(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}
