// An OTLP/JSON request rewritten as Jaeger's JSON export writes the same spans (the shape of the
// query API's /api/traces and the UI's "Download results"): microsecond times, typed tags, span
// events as logs with an `event` field, array attributes as their JSON text, the status as
// `otel.status_code` / `otel.status_description` / `error` tags, the parent as a CHILD_OF reference
// and links as FOLLOWS_FROM references.
import type { OtlpAnyValue, OtlpKeyValue, OtlpTraceRequest } from '../../src/otlp-json';

interface JaegerTag {
  key: string;
  type: 'string' | 'bool' | 'int64' | 'float64';
  value: string | number | boolean;
}

function tagOf({ key, value }: OtlpKeyValue): JaegerTag {
  if ('stringValue' in value) return { key, type: 'string', value: value.stringValue };
  if ('boolValue' in value) return { key, type: 'bool', value: value.boolValue };
  if ('intValue' in value) return { key, type: 'int64', value: Number(value.intValue) };
  if ('doubleValue' in value) return { key, type: 'float64', value: value.doubleValue };
  if ('arrayValue' in value) return { key, type: 'string', value: JSON.stringify(value.arrayValue.values.map(plain)) };
  return { key, type: 'string', value: '' };
}

function plain(value: OtlpAnyValue): string | number | boolean | null {
  if ('stringValue' in value) return value.stringValue;
  if ('boolValue' in value) return value.boolValue;
  if ('intValue' in value) return Number(value.intValue);
  if ('doubleValue' in value) return value.doubleValue;
  return null;
}

const micros = (nanos: string) => Number(BigInt(nanos) / 1000n);

export function toJaegerExport(requests: readonly OtlpTraceRequest[]): { data: unknown[] } {
  const traces = new Map<string, unknown[]>();
  for (const request of requests) {
    for (const resource of request.resourceSpans) {
      for (const scope of resource.scopeSpans) {
        for (const span of scope.spans) {
          const tags = span.attributes.map(tagOf);
          if (span.status.code === 2) {
            tags.push({ key: 'otel.status_code', type: 'string', value: 'ERROR' }, { key: 'error', type: 'bool', value: true });
            if (span.status.message !== undefined) tags.push({ key: 'otel.status_description', type: 'string', value: span.status.message });
          }
          const references = [
            ...(span.parentSpanId === undefined ? [] : [{ refType: 'CHILD_OF', traceID: span.traceId, spanID: span.parentSpanId }]),
            ...span.links.map((link) => ({ refType: 'FOLLOWS_FROM', traceID: link.traceId, spanID: link.spanId })),
          ];
          const list = traces.get(span.traceId) ?? [];
          list.push({
            traceID: span.traceId,
            spanID: span.spanId,
            operationName: span.name,
            references,
            startTime: micros(span.startTimeUnixNano),
            duration: micros(span.endTimeUnixNano) - micros(span.startTimeUnixNano),
            tags,
            logs: span.events.map((event) => ({
              timestamp: micros(event.timeUnixNano),
              fields: [{ key: 'event', type: 'string', value: event.name }, ...event.attributes.map(tagOf)],
            })),
            processID: 'p1',
            warnings: null,
          });
          traces.set(span.traceId, list);
        }
      }
    }
  }
  return {
    data: [...traces].map(([traceID, spans]) => ({ traceID, spans, processes: { p1: { serviceName: 'app', tags: [] } }, warnings: null })),
  };
}
