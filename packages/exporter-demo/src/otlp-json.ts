// ReadableSpans to an OTLP/JSON ExportTraceServiceRequest, as the OpenTelemetry file exporter and
// OTLP/HTTP with `content-type: application/json` define it: ids in lowercase hex (not base64),
// 64-bit integers (timestamps, intValue) as decimal strings, enums as numbers.
//
// Written here rather than borrowed from @opentelemetry/otlp-transformer's JsonTraceSerializer:
// that package is only a transitive dependency of the OTLP exporters (each carries its own
// nested copy), so importing it would tie the demo to an undeclared package.
import type { Attributes, AttributeValue, HrTime, Link, SpanContext } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';

/** OTLP AnyValue in its JSON mapping. An empty object is OTLP's "no value". */
export type OtlpAnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number }
  | { arrayValue: { values: OtlpAnyValue[] } }
  | Record<string, never>;

export interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  traceState?: string;
  parentSpanId?: string;
  flags: number;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpKeyValue[];
  droppedAttributesCount: number;
  events: { timeUnixNano: string; name: string; attributes: OtlpKeyValue[]; droppedAttributesCount: number }[];
  droppedEventsCount: number;
  links: { traceId: string; spanId: string; traceState?: string; attributes: OtlpKeyValue[]; droppedAttributesCount: number; flags: number }[];
  droppedLinksCount: number;
  status: { code: number; message?: string };
}

export interface OtlpResourceSpans {
  resource: { attributes: OtlpKeyValue[]; droppedAttributesCount: number };
  scopeSpans: { scope: { name: string; version?: string }; spans: OtlpSpan[]; schemaUrl?: string }[];
  schemaUrl?: string;
}

/** One line of the file: exactly an OTLP/HTTP JSON request body. */
export interface OtlpTraceRequest {
  resourceSpans: OtlpResourceSpans[];
}

/** Span flags: W3C trace flags in the low byte, plus "is-remote is known" and "parent is remote". */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;
const NANOS_PER_SECOND = 1_000_000_000n;

/** Groups spans by resource, then by instrumentation scope, as the OTLP request nests them. */
export function toOtlpTraceRequest(spans: readonly ReadableSpan[]): OtlpTraceRequest {
  const byResource = new Map<Resource, Map<string, { scope: InstrumentationScope; spans: OtlpSpan[] }>>();
  for (const span of spans) {
    let scopes = byResource.get(span.resource);
    if (scopes === undefined) {
      scopes = new Map();
      byResource.set(span.resource, scopes);
    }
    const scope = span.instrumentationScope;
    const key = `${scope.name}@${scope.version ?? ''}@${scope.schemaUrl ?? ''}`;
    let entry = scopes.get(key);
    if (entry === undefined) {
      entry = { scope, spans: [] };
      scopes.set(key, entry);
    }
    entry.spans.push(toOtlpSpan(span));
  }
  return {
    resourceSpans: [...byResource].map(([resource, scopes]) => ({
      resource: { attributes: toKeyValues(resource.attributes), droppedAttributesCount: 0 },
      scopeSpans: [...scopes.values()].map(({ scope, spans: scopeSpans }) => ({
        scope: scope.version === undefined ? { name: scope.name } : { name: scope.name, version: scope.version },
        spans: scopeSpans,
        ...(scope.schemaUrl !== undefined && scope.schemaUrl !== '' && { schemaUrl: scope.schemaUrl }),
      })),
      ...(resource.schemaUrl !== undefined && resource.schemaUrl !== '' && { schemaUrl: resource.schemaUrl }),
    })),
  };
}

export function toOtlpSpan(span: ReadableSpan): OtlpSpan {
  const context = span.spanContext();
  const parent = span.parentSpanContext;
  const traceState = context.traceState?.serialize();
  return {
    traceId: context.traceId,
    spanId: context.spanId,
    ...(traceState !== undefined && traceState !== '' && { traceState }),
    ...(parent?.spanId !== undefined && parent.spanId !== '' && { parentSpanId: parent.spanId }),
    flags: flagsOf(context, parent?.isRemote === true),
    name: span.name,
    // api SpanKind starts at INTERNAL = 0; OTLP reserves 0 for UNSPECIFIED.
    kind: span.kind + 1,
    startTimeUnixNano: nanos(span.startTime),
    endTimeUnixNano: nanos(span.endTime),
    attributes: toKeyValues(span.attributes),
    droppedAttributesCount: span.droppedAttributesCount,
    events: span.events.map(toOtlpEvent),
    droppedEventsCount: span.droppedEventsCount,
    links: span.links.map(toOtlpLink),
    droppedLinksCount: span.droppedLinksCount,
    // api SpanStatusCode (UNSET 0, OK 1, ERROR 2) has OTLP's numbering.
    status: span.status.message === undefined || span.status.message === ''
      ? { code: span.status.code }
      : { code: span.status.code, message: span.status.message },
  };
}

function toOtlpEvent(event: TimedEvent): OtlpSpan['events'][number] {
  return {
    timeUnixNano: nanos(event.time),
    name: event.name,
    attributes: toKeyValues(event.attributes ?? {}),
    droppedAttributesCount: event.droppedAttributesCount ?? 0,
  };
}

function toOtlpLink(link: Link): OtlpSpan['links'][number] {
  const traceState = link.context.traceState?.serialize();
  return {
    traceId: link.context.traceId,
    spanId: link.context.spanId,
    ...(traceState !== undefined && traceState !== '' && { traceState }),
    attributes: toKeyValues(link.attributes ?? {}),
    droppedAttributesCount: link.droppedAttributesCount ?? 0,
    flags: flagsOf(link.context, link.context.isRemote === true),
  };
}

function flagsOf(context: SpanContext, remote: boolean): number {
  return (context.traceFlags & 0xff) | HAS_IS_REMOTE | (remote ? IS_REMOTE : 0);
}

/** HrTime ([seconds, nanoseconds]) as a decimal string of nanoseconds since the epoch. */
export function nanos(time: HrTime): string {
  return (BigInt(Math.trunc(time[0])) * NANOS_PER_SECOND + BigInt(Math.trunc(time[1]))).toString();
}

export function toKeyValues(attributes: Attributes): OtlpKeyValue[] {
  const result: OtlpKeyValue[] = [];
  for (const [key, value] of Object.entries(attributes)) {
    // The API allows undefined values (attribute "unset"); OTLP has no key without a value.
    if (value !== undefined) result.push({ key, value: toAnyValue(value) });
  }
  return result;
}

export function toAnyValue(value: AttributeValue | null | undefined): OtlpAnyValue {
  switch (typeof value) {
    case 'string':
      return { stringValue: value };
    case 'boolean':
      return { boolValue: value };
    case 'number':
      if (Number.isSafeInteger(value)) return { intValue: String(value) };
      // JSON has no NaN or Infinity (JSON.stringify would write null and the request would fail).
      return Number.isFinite(value) ? { doubleValue: value } : { stringValue: String(value) };
    case 'object':
      // Attribute arrays may hold null/undefined entries; they stay as empty values.
      return Array.isArray(value) ? { arrayValue: { values: value.map((item) => toAnyValue(item)) } } : {};
    default:
      return {};
  }
}
