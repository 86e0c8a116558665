// Reads the OpenTelemetry file-exporter format: one OTLP/JSON ExportTraceServiceRequest per line
// (`{"resourceSpans":[...]}`), ids in hex, 64-bit integers as decimal strings.
import { TraceFileError, type TraceAttributes, type TraceSpan, type TraceValue } from './trace-span';

interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface OtlpSpanJson {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: KeyValue[];
  events?: { name?: string; timeUnixNano?: string | number; attributes?: KeyValue[] }[];
  links?: { traceId?: string; spanId?: string }[];
  status?: { code?: number; message?: string };
}
export interface OtlpRequestJson {
  resourceSpans?: { scopeSpans?: { spans?: OtlpSpanJson[] }[] }[];
}

const STATUS_ERROR = 2;

/** Spans of one parsed request (one line of the file). */
export function spansOfOtlpRequest(request: OtlpRequestJson, where: string): TraceSpan[] {
  if (!Array.isArray(request.resourceSpans)) throw new TraceFileError(`${where}: no "resourceSpans" array`);
  return request.resourceSpans.flatMap((resource) => (resource.scopeSpans ?? []).flatMap((scope) => (scope.spans ?? []).map(toTraceSpan)));
}

function toTraceSpan(span: OtlpSpanJson): TraceSpan {
  return {
    traceId: span.traceId ?? '',
    spanId: span.spanId ?? '',
    parentSpanId: span.parentSpanId === undefined || span.parentSpanId === '' ? undefined : span.parentSpanId,
    name: span.name ?? '',
    startMs: nanosToMs(span.startTimeUnixNano),
    endMs: nanosToMs(span.endTimeUnixNano),
    attributes: attributesOf(span.attributes),
    events: (span.events ?? []).map((event) => ({ name: event.name ?? '', timeMs: nanosToMs(event.timeUnixNano), attributes: attributesOf(event.attributes) })),
    error: span.status?.code === STATUS_ERROR,
    statusMessage: span.status?.message === '' ? undefined : span.status?.message,
    links: (span.links ?? []).map((link) => ({ traceId: link.traceId ?? '', spanId: link.spanId ?? '' })),
  };
}

/** Epoch nanoseconds (a decimal string, as 64-bit integers are written) to milliseconds. */
function nanosToMs(nanos: string | number | undefined): number {
  if (nanos === undefined) return 0;
  if (typeof nanos === 'number') return nanos / 1e6;
  // Split before converting: epoch nanoseconds do not fit a double exactly.
  const whole = nanos.length > 6 ? Number(nanos.slice(0, -6)) : 0;
  const fraction = Number(nanos.slice(-6)) / 1e6;
  return whole + fraction;
}

function attributesOf(list: readonly KeyValue[] | undefined): TraceAttributes {
  const attributes: Record<string, TraceValue> = {};
  for (const { key, value } of list ?? []) {
    const plain = value === undefined ? undefined : plainValue(value);
    if (plain !== undefined) attributes[key] = plain;
  }
  return attributes;
}

function plainValue(value: AnyValue): TraceValue | undefined {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) {
    return (value.arrayValue.values ?? []).map(plainValue).filter((item): item is string | number | boolean => item !== undefined && !Array.isArray(item));
  }
  return undefined;
}
