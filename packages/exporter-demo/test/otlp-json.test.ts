// The OTLP/JSON mapping and the file exporter: hex ids, string nanoseconds, AnyValue attributes,
// OTLP enum numbering, grouping by resource and scope, one request per line.
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nanos, toAnyValue, toOtlpTraceRequest } from '../src/otlp-json';
import { OtlpJsonFileExporter } from '../src/otlp-json-file-exporter';

function finishedSpans(): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'otlp-json-test' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  const server = provider.getTracer('server-scope', '1.2.3').startSpan('GET /x', { kind: SpanKind.SERVER });
  const checkout = provider.getTracer('pool-scope').startSpan(
    'pg-pool checkout',
    {
      attributes: { text: 'a', whole: 42, fraction: 1.5, flag: true, list: ['x', 'y'], huge: 2 ** 60, unset: undefined },
      links: [{ context: server.spanContext(), attributes: { why: 'linked' } }],
    },
    trace.setSpan(context.active(), server),
  );
  checkout.addEvent('pool.acquired', { 'pool.held_ms': 3 });
  checkout.setStatus({ code: SpanStatusCode.ERROR, message: 'lease still open at tracer provider shutdown' });
  checkout.end();
  server.end();
  return memory.getFinishedSpans();
}

describe('toOtlpTraceRequest', () => {
  it('nests spans by resource and scope, with OTLP/JSON encodings', () => {
    const spans = finishedSpans();
    const request = toOtlpTraceRequest(spans);
    expect(request.resourceSpans).toHaveLength(1);
    const [resourceSpans] = request.resourceSpans;
    expect(resourceSpans?.resource.attributes).toContainEqual({ key: 'service.name', value: { stringValue: 'otlp-json-test' } });
    expect(resourceSpans?.scopeSpans.map((scope) => scope.scope)).toEqual([{ name: 'pool-scope' }, { name: 'server-scope', version: '1.2.3' }]);

    const byName = new Map(resourceSpans?.scopeSpans.flatMap((scope) => scope.spans).map((span) => [span.name, span]));
    const server = byName.get('GET /x');
    const checkout = byName.get('pg-pool checkout');
    const source = spans.find((span) => span.name === 'pg-pool checkout');
    expect(server?.kind).toBe(2);
    expect(server?.parentSpanId).toBeUndefined();
    expect(checkout?.kind).toBe(1);
    expect(checkout?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(checkout?.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(checkout?.parentSpanId).toBe(server?.spanId);
    expect(checkout?.startTimeUnixNano).toBe(nanos(source!.startTime));
    expect(checkout?.status).toEqual({ code: 2, message: 'lease still open at tracer provider shutdown' });
    expect(checkout?.attributes).toEqual([
      { key: 'text', value: { stringValue: 'a' } },
      { key: 'whole', value: { intValue: '42' } },
      { key: 'fraction', value: { doubleValue: 1.5 } },
      { key: 'flag', value: { boolValue: true } },
      { key: 'list', value: { arrayValue: { values: [{ stringValue: 'x' }, { stringValue: 'y' }] } } },
      { key: 'huge', value: { doubleValue: 2 ** 60 } },
    ]);
    expect(checkout?.events).toEqual([
      { timeUnixNano: expect.stringMatching(/^\d{19}$/), name: 'pool.acquired', attributes: [{ key: 'pool.held_ms', value: { intValue: '3' } }], droppedAttributesCount: 0 },
    ]);
    expect(checkout?.links).toEqual([
      { traceId: server?.traceId, spanId: server?.spanId, attributes: [{ key: 'why', value: { stringValue: 'linked' } }], droppedAttributesCount: 0, flags: 0x101 },
    ]);
  });

  it('writes numbers JSON cannot hold as strings', () => {
    expect(toAnyValue(Number.NaN)).toEqual({ stringValue: 'NaN' });
    expect(nanos([1_700_000_000, 123])).toBe('1700000000000000123');
  });
});

describe('OtlpJsonFileExporter', () => {
  it('writes one parseable request per export call and counts spans', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otlp-json-file-'));
    try {
      const exporter = new OtlpJsonFileExporter(join(dir, 'deeper', 'traces.jsonl'));
      const spans = finishedSpans();
      const results: number[] = [];
      exporter.export(spans.slice(0, 1), (result) => results.push(result.code));
      exporter.export(spans.slice(1), (result) => results.push(result.code));
      await exporter.shutdown();
      exporter.export(spans, (result) => results.push(result.code));

      expect(results).toEqual([ExportResultCode.SUCCESS, ExportResultCode.SUCCESS, ExportResultCode.FAILED]);
      const lines = readFileSync(exporter.path, 'utf8').trimEnd().split('\n');
      expect(lines.map((line) => Object.keys(JSON.parse(line) as object))).toEqual([['resourceSpans'], ['resourceSpans']]);
      expect({ spans: exporter.spans, lines: exporter.lines }).toEqual({ spans: 2, lines: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
