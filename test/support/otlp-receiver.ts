// A loopback OTLP/HTTP receiver for tests: accepts what an SDK exporter sends to /v1/traces and
// /v1/metrics (protobuf or JSON) and decodes protobuf with the official OTLP definitions
// (compiled by protobufjs, shipped in @opentelemetry/otlp-transformer 0.57, aliased as
// `otlp-proto-definitions`).
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const requireFromHere = createRequire(import.meta.url);

interface ProtoType {
  decode(bytes: Uint8Array): unknown;
  toObject(message: unknown, options: Record<string, unknown>): unknown;
}

interface ProtoRoot {
  opentelemetry: {
    proto: {
      collector: {
        trace: { v1: { ExportTraceServiceRequest: ProtoType } };
        metrics: { v1: { ExportMetricsServiceRequest: ProtoType } };
      };
    };
  };
}

const proto = requireFromHere('otlp-proto-definitions/build/src/generated/root.js') as ProtoRoot;
const TraceRequest = proto.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const MetricsRequest = proto.opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest;
const TO_OBJECT = { longs: Number, enums: Number, bytes: String, defaults: false, arrays: true };

/** A span as received, with ids in hex and attributes flattened to plain values. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  readonly kind: number;
  readonly attributes: Record<string, unknown>;
  readonly events: { name: string; attributes: Record<string, unknown> }[];
  readonly links: { traceId: string; spanId: string }[];
  readonly status: { code: number; message: string | undefined };
  readonly serviceName: unknown;
  readonly scope: string;
}

export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>`: what OTEL_EXPORTER_OTLP_ENDPOINT takes. */
  readonly endpoint: string;
  spans(): ReceivedSpan[];
  /** Names of the metrics received. */
  metricNames(): string[];
  /** Content types of the requests received, e.g. `application/x-protobuf`. */
  contentTypes(): string[];
  close(): Promise<void>;
}

type OtlpAnyValue = {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
};
type OtlpKeyValue = { key: string; value?: OtlpAnyValue };

function plainValue(value: OtlpAnyValue | undefined): unknown {
  if (value === undefined) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(plainValue);
  return undefined;
}

function plainAttributes(attributes: OtlpKeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((attributes ?? []).map((kv) => [kv.key, plainValue(kv.value)]));
}

/** OTLP/JSON sends ids as hex; protobuf decoding with `bytes: String` gives base64. */
function hexId(id: string | undefined, json: boolean): string {
  if (id === undefined || id === '') return '';
  return json ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex');
}

interface OtlpSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  attributes?: OtlpKeyValue[];
  events?: { name: string; attributes?: OtlpKeyValue[] }[];
  links?: { traceId?: string; spanId?: string }[];
  status?: { code?: number; message?: string };
}

interface OtlpTraceRequest {
  resourceSpans?: {
    resource?: { attributes?: OtlpKeyValue[] };
    scopeSpans?: { scope?: { name?: string }; spans?: OtlpSpan[] }[];
  }[];
}

/** Flattens an ExportTraceServiceRequest (decoded protobuf or parsed JSON) into spans. */
export function spansOfRequest(request: OtlpTraceRequest, json: boolean): ReceivedSpan[] {
  return (request.resourceSpans ?? []).flatMap((resourceSpans) => {
    const serviceName = plainAttributes(resourceSpans.resource?.attributes)['service.name'];
    return (resourceSpans.scopeSpans ?? []).flatMap((scopeSpans) =>
      (scopeSpans.spans ?? []).map((span) => ({
        traceId: hexId(span.traceId, json),
        spanId: hexId(span.spanId, json),
        parentSpanId: span.parentSpanId ? hexId(span.parentSpanId, json) : undefined,
        name: span.name,
        kind: span.kind ?? 0,
        attributes: plainAttributes(span.attributes),
        events: (span.events ?? []).map((event) => ({ name: event.name, attributes: plainAttributes(event.attributes) })),
        links: (span.links ?? []).map((link) => ({ traceId: hexId(link.traceId, json), spanId: hexId(link.spanId, json) })),
        status: { code: span.status?.code ?? 0, message: span.status?.message },
        serviceName,
        scope: scopeSpans.scope?.name ?? '',
      })),
    );
  });
}

interface OtlpMetricsRequest {
  resourceMetrics?: { scopeMetrics?: { metrics?: { name: string }[] }[] }[];
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** Starts the receiver on a free loopback port. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const metricNames: string[] = [];
  const contentTypes: string[] = [];

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request);
    const contentType = String(request.headers['content-type'] ?? '');
    contentTypes.push(contentType);
    const json = contentType.includes('json');
    if (request.url === '/v1/traces') {
      const decoded = json ? JSON.parse(body.toString('utf8')) : TraceRequest.toObject(TraceRequest.decode(body), TO_OBJECT);
      spans.push(...spansOfRequest(decoded as OtlpTraceRequest, json));
    } else if (request.url === '/v1/metrics') {
      const decoded = (json ? JSON.parse(body.toString('utf8')) : MetricsRequest.toObject(MetricsRequest.decode(body), TO_OBJECT)) as OtlpMetricsRequest;
      for (const resource of decoded.resourceMetrics ?? []) {
        for (const scope of resource.scopeMetrics ?? []) for (const metric of scope.metrics ?? []) metricNames.push(metric.name);
      }
    } else {
      response.writeHead(404).end();
      return;
    }
    // An empty body is a valid, empty Export*ServiceResponse in both encodings.
    response.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : '');
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(400).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans: () => [...spans],
    metricNames: () => [...new Set(metricNames)],
    contentTypes: () => [...contentTypes],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
