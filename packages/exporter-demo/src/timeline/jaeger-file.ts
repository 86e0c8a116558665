// Reads Jaeger's JSON export (the UI's "Download results", the query API's /api/traces):
// `{"data":[{"traceID","spans":[{"operationName","startTime"(µs),"duration"(µs),"tags","logs",
// "references"}],"processes"}]}`. Jaeger writes an OTLP array attribute as its JSON text, and the
// span status as the `otel.status_code` / `otel.status_description` / `error` tags.
import { TraceFileError, type TraceAttributes, type TraceSpan, type TraceValue } from './trace-span';

interface JaegerTag {
  key: string;
  type?: string;
  value?: unknown;
}
interface JaegerSpanJson {
  traceID?: string;
  spanID?: string;
  operationName?: string;
  startTime?: number;
  duration?: number;
  tags?: JaegerTag[];
  logs?: { timestamp?: number; fields?: JaegerTag[] }[];
  references?: { refType?: string; traceID?: string; spanID?: string }[];
}
export interface JaegerExportJson {
  data?: { traceID?: string; spans?: JaegerSpanJson[] }[];
}

const STATUS_CODE = 'otel.status_code';
const STATUS_DESCRIPTION = 'otel.status_description';
/** The log field that holds an OTLP event's name. */
const EVENT_FIELD = 'event';

export function spansOfJaegerExport(document: JaegerExportJson, where: string): TraceSpan[] {
  if (!Array.isArray(document.data)) throw new TraceFileError(`${where}: no "data" array (not a Jaeger JSON export)`);
  return document.data.flatMap((trace) => (trace.spans ?? []).map((span) => toTraceSpan(span, trace.traceID ?? '')));
}

function toTraceSpan(span: JaegerSpanJson, traceId: string): TraceSpan {
  const tags = attributesOf(span.tags);
  const startMs = (span.startTime ?? 0) / 1000;
  const references = span.references ?? [];
  const parent = references.find((reference) => reference.refType === 'CHILD_OF');
  const error = tags[STATUS_CODE] === 'ERROR' || tags['error'] === true;
  const message = tags[STATUS_DESCRIPTION];
  return {
    traceId: span.traceID ?? traceId,
    spanId: span.spanID ?? '',
    parentSpanId: parent?.spanID,
    name: span.operationName ?? '',
    startMs,
    endMs: startMs + (span.duration ?? 0) / 1000,
    attributes: tags,
    events: (span.logs ?? []).map((log) => {
      const { [EVENT_FIELD]: name, ...attributes } = attributesOf(log.fields);
      return { name: typeof name === 'string' ? name : '', timeMs: (log.timestamp ?? 0) / 1000, attributes };
    }),
    error,
    statusMessage: typeof message === 'string' && message !== '' ? message : undefined,
    links: references
      .filter((reference) => reference.refType === 'FOLLOWS_FROM')
      .map((reference) => ({ traceId: reference.traceID ?? '', spanId: reference.spanID ?? '' })),
  };
}

function attributesOf(tags: readonly JaegerTag[] | undefined): TraceAttributes {
  const attributes: Record<string, TraceValue> = {};
  for (const tag of tags ?? []) {
    const value = plainValue(tag);
    if (value !== undefined) attributes[tag.key] = value;
  }
  return attributes;
}

function plainValue(tag: JaegerTag): TraceValue | undefined {
  const { value } = tag;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  if (tag.type === 'int64' || tag.type === 'float64') return Number(value);
  if (tag.type === 'bool') return value === 'true';
  return arrayText(value) ?? value;
}

/** An OTLP array attribute as Jaeger writes it: `["a","b"]`. */
function arrayText(text: string): TraceValue | undefined {
  if (!text.startsWith('[') || !text.endsWith(']')) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (Array.isArray(parsed) && parsed.every((item) => ['string', 'number', 'boolean'].includes(typeof item))) {
      return parsed as (string | number | boolean)[];
    }
  } catch {
    // Not JSON: an ordinary string that happens to start with "[".
  }
  return undefined;
}
