// `npm run demo` end to end, as a child process in short mode: its own PostgreSQL, the leaky
// service, load until the pool is exhausted, OTLP/HTTP protobuf to a loopback receiver, the
// OTLP/JSON file, and the console report. Runs the BUILT demo (`npm run build` first).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode, type Ended } from './support/node-process';
import { spansOfRequest, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver';

const DEMO = 'packages/exporter-demo/build/main.js';
/** Bounds the child; the test's own timeout is above it, so a hang fails with the child's output. */
const RUN_TIMEOUT_MS = 90_000;
const LEAKING_FUNCTION = 'BillingService.exportInvoice';
/** OTLP span kinds (api SpanKind + 1). */
const OTLP_KIND_SERVER = 2;
const OTLP_STATUS_ERROR = 2;

/** The built demo from the repository root; the demo starts its own PostgreSQL. */
function runDemo(args: readonly string[], env: Record<string, string> = {}): Promise<Ended> {
  return runNode(['--enable-source-maps', DEMO, ...args], { timeoutMs: RUN_TIMEOUT_MS, env });
}

/** Every line of the trace file, each parsed as one OTLP/JSON ExportTraceServiceRequest. */
function readTraceFile(path: string, run: Ended): ReceivedSpan[] {
  const lines = readFileSync(path, 'utf8').split('\n').filter((line) => line.trim() !== '');
  expect(lines.length, `${run.context}the trace file is empty`).toBeGreaterThan(0);
  return lines.flatMap((line, index) => {
    let request: unknown;
    try {
      request = JSON.parse(line);
    } catch (error) {
      return expect.fail(`${run.context}line ${index + 1} of the trace file is not JSON: ${String(error)}`);
    }
    expect(Object.keys(request as object), `${run.context}line ${index + 1}`).toEqual(['resourceSpans']);
    expect(Array.isArray((request as { resourceSpans: unknown }).resourceSpans), `${run.context}line ${index + 1}`).toBe(true);
    return spansOfRequest(request as Parameters<typeof spansOfRequest>[0], true);
  });
}

function named(spans: readonly ReceivedSpan[], name: string): ReceivedSpan[] {
  return spans.filter((span) => span.name === name);
}

describe('npm run demo --short', { timeout: RUN_TIMEOUT_MS + 20_000 }, () => {
  let receiver: OtlpReceiver;
  let outputDir: string;
  let run: Ended;
  let traceFile: string;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    outputDir = mkdtempSync(join(tmpdir(), 'pool-leak-demo-test-'));
    traceFile = join(outputDir, 'nested', 'traces.jsonl');
    run = await runDemo(['--short', '--output', traceFile], { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint });
  }, RUN_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    await receiver?.close();
    if (outputDir !== undefined) rmSync(outputDir, { recursive: true, force: true });
  });

  it('exits 0, and the first line of the report names the leaking function', () => {
    expect(run.code, run.context).toBe(0);
    const firstLine = run.stdout.split('\n')[0] ?? '';
    expect(firstLine, run.context).toMatch(/^LEAK: /);
    expect(firstLine, run.context).toContain(LEAKING_FUNCTION);
    expect(firstLine, run.context).toContain('service.ts:');
  });

  it('reports finalizer and loop-tick checkins with the code that checked in', () => {
    expect(run.stdout, run.context).toMatch(/pool\.checkin\.finalizer \d+×: taken by BillingService\.renderReport/);
    expect(run.stdout, run.context).toMatch(/pool\.checkin\.finalizer[^\n]*\n\s+checked in by releaseAbandonedCursor/);
    expect(run.stdout, run.context).toMatch(/pool\.checkin\.loop_tick \d+×: taken by BillingService\.recordAudit/);
    expect(run.stdout, run.context).toMatch(/pool\.checkin\.loop_tick[^\n]*\n\s+checked in by BillingService\.flushAuditQueue/);
    // The slow route stays under the threshold and the healthy ones check in: one leaking site.
    expect(run.stdout, run.context).not.toMatch(/^\s+2\. /m);
    expect(run.stdout, run.context).toContain(`OTLP traces:`);
    expect(run.stdout, run.context).toContain(`accepted by ${receiver.endpoint}/v1/traces`);
  });

  it('writes an OTLP/JSON file, one request per line, with leak spans of the leaking function', () => {
    const spans = readTraceFile(traceFile, run);
    for (const span of spans) {
      expect(span.traceId, run.context).toMatch(/^[0-9a-f]{32}$/);
      expect(span.spanId, run.context).toMatch(/^[0-9a-f]{16}$/);
    }
    const leaks = named(spans, 'pg-pool leak');
    expect(leaks.length, run.context).toBeGreaterThan(0);
    const checkouts = named(spans, 'pg-pool checkout');
    const servers = new Map(spans.filter((span) => span.kind === OTLP_KIND_SERVER).map((span) => [span.spanId, span]));
    for (const leak of leaks) {
      expect(leak.attributes['code.function.name'], run.context).toBe(LEAKING_FUNCTION);
      expect(String(leak.attributes['code.stacktrace']), run.context).toContain(LEAKING_FUNCTION);
      // Linked to its checkout span, and a child of the request that took the connection.
      const checkout = checkouts.find((span) => span.spanId === leak.links[0]?.spanId);
      expect(checkout?.attributes['code.function.name'], run.context).toBe(LEAKING_FUNCTION);
      expect(servers.get(leak.parentSpanId ?? '')?.name, run.context).toBe('GET /invoices/:id/export');
    }
    // Every checkout has its request's server span as parent.
    expect(checkouts.filter((span) => !servers.has(span.parentSpanId ?? '')).map((span) => span.name), run.context).toEqual([]);
    // The pool ran dry: checkouts failed without ever holding a connection.
    const failed = checkouts.filter((span) => span.status.code === OTLP_STATUS_ERROR && span.attributes['pool.held_ms'] === undefined);
    expect(failed.length, run.context).toBeGreaterThan(0);
    expect(failed[0]?.status.message, run.context).toBe('timeout exceeded when trying to connect');
    // The file and the OTLP endpoint got the same spans.
    expect(new Set(spans.map((span) => span.spanId)), run.context).toEqual(new Set(receiver.spans().map((span) => span.spanId)));
  });

  it('exports checkout and leak spans and db.client.connection metrics over OTLP/HTTP protobuf', () => {
    const types = new Set(receiver.contentTypes());
    expect([...types], run.context).toEqual(['application/x-protobuf']);
    const spans = receiver.spans();
    expect(named(spans, 'pg-pool checkout').length, run.context).toBeGreaterThan(0);
    const leaks = named(spans, 'pg-pool leak');
    expect(leaks.length, run.context).toBeGreaterThan(0);
    expect(new Set(leaks.map((span) => span.attributes['code.function.name'])), run.context).toEqual(new Set([LEAKING_FUNCTION]));
    expect(spans.every((span) => span.serviceName === 'pool-leak-demo'), run.context).toBe(true);
    expect(receiver.metricNames(), run.context).toEqual(
      expect.arrayContaining([
        'db.client.connection.count',
        'db.client.connection.max',
        'db.client.connection.pending_requests',
        'db.client.connection.wait_time',
        'db.client.connection.use_time',
        'db.client.connection.timeouts',
        'pool.leak.suspected',
      ]),
    );
  });
});

describe('demo flags', () => {
  it('--help prints the usage and exits 0 without starting anything', async () => {
    const help = await runDemo(['--help']);
    expect(help.code, help.context).toBe(0);
    expect(help.stdout, help.context).toMatch(/^Usage: /);
    for (const flag of ['--duration', '--requests', '--concurrency', '--pool-size', '--threshold', '--output', '--otlp-endpoint', '--short']) {
      expect(help.stdout, help.context).toContain(flag);
    }
    expect(help.stderr, help.context).toBe('');
  });

  it('a bad flag exits 2 and says what to do', async () => {
    const bad = await runDemo(['--requests', 'many']);
    expect(bad.code, bad.context).toBe(2);
    expect(bad.stderr, bad.context).toContain('--requests "many" is not a number');
    const unknown = await runDemo(['--request', '5']);
    expect(unknown.code, unknown.context).toBe(2);
    expect(unknown.stderr, unknown.context).toContain('--help');
  });
});
