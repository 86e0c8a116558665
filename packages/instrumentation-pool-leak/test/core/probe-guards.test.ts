// The lease core against probes that break, on their own (no pool library, the real SDK): a
// describe or dbSystemOf that throws never costs a checkout its span; the pool's gauges go,
// told once through diag.
import { context, type DiagLogger } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { beforeEach, expect, it } from 'vitest';
import { LeaseCore, type PoolProbe } from '../../src/core/lease-core';

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

let exporter: InMemorySpanExporter;
let core: LeaseCore;
let warnings: string[];

beforeEach(() => {
  exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  warnings = [];
  const logger: DiagLogger = {
    error: (message) => warnings.push(message),
    warn: (message) => warnings.push(message),
    info: () => {},
    debug: () => {},
    verbose: () => {},
  };
  core = new LeaseCore({
    tracer: () => provider.getTracer('probe-guards'),
    tracerProvider: () => provider,
    meter: new MeterProvider().getMeter('probe-guards'),
    diag: logger,
  });
});

function cycle(pool: object, probe: PoolProbe<object>, connection: object = {}): void {
  const lease = core.checkout(pool, probe, cycle);
  expect(lease).toBeDefined();
  lease!.granted(connection);
  lease!.checkin(false, cycle);
}

it('describe throws: the pool is known by its probe library, every checkout has its span, one warning', () => {
  const probe: PoolProbe<object> = {
    library: 'tarn',
    describe: () => {
      throw new RangeError('max is not readable');
    },
  };
  const pool = {};
  for (let index = 0; index < 3; index++) cycle(pool, probe);
  const spans = exporter.getFinishedSpans();
  expect(spans.map((span) => span.name)).toEqual(['tarn checkout', 'tarn checkout', 'tarn checkout']);
  expect(spans.every((span) => span.attributes['pool.held_ms'] !== undefined)).toBe(true);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('pool "tarn" (tarn): its probe describe threw RangeError: max is not readable');
});

it('a probe without a library name whose describe throws: spans named "pool checkout"', () => {
  const probe: PoolProbe<object> = {
    describe: () => {
      throw new Error('nothing to describe');
    },
  };
  cycle({}, probe);
  expect(exporter.getFinishedSpans().map((span) => span.name)).toEqual(['pool checkout']);
});

it('dbSystemOf throws or answers no string: the grant completes, the described db.system.name stays', () => {
  for (const dbSystemOf of [
    () => {
      throw new Error('server version unreadable');
    },
    () => 42 as unknown as string,
  ]) {
    exporter.reset();
    const probe: PoolProbe<object> = { library: 'mysql2', describe: () => ({ library: 'mysql2', dbSystem: 'mysql' }), dbSystemOf };
    cycle({}, probe);
    const [span] = exporter.getFinishedSpans();
    expect(span?.attributes['db.system.name']).toBe('mysql');
    expect(span?.attributes['pool.held_ms']).toBeDefined();
  }
});

it('describe answers a maxConnections that is no count: left out, gauges off, spans kept', () => {
  const probe: PoolProbe<object> = { library: 'generic-pool', describe: () => ({ library: 'generic-pool', maxConnections: -1 }) };
  cycle({}, probe);
  expect(exporter.getFinishedSpans()).toHaveLength(1);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('describe returned maxConnections -1 (number)');
});
