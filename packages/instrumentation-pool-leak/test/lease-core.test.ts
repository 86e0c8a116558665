// The lease core on its own: no pool library, only the real SDK.
import { context, SpanStatusCode, trace, type DiagLogger, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { beforeEach, describe, expect, it } from 'vitest';
import { LeaseCore, type PoolProbe } from '../src/lease-core';
import { createStackCapture } from '../src/stack';
import { eventNamed } from './support/spans';

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

interface FakePoolObject {
  readonly name: string;
  waiting: number;
}

const probe: PoolProbe<FakePoolObject> = {
  describe: (pool) => ({ library: 'generic-pool', name: pool.name, maxConnections: 2 }),
  pendingAhead: (pool) => (pool.waiting > 0 ? pool.waiting : undefined),
};

let exporter: InMemorySpanExporter;
let meterProvider: MeterProvider;
let provider: TracerProvider;
let core: LeaseCore;
let errors: string[];

function coreWith(tracer: () => Tracer): LeaseCore {
  const logger: DiagLogger = {
    error: (message) => errors.push(message),
    warn: () => {},
    info: () => {},
    debug: () => {},
    verbose: () => {},
  };
  return new LeaseCore({
    tracer,
    tracerProvider: () => provider,
    meter: meterProvider.getMeter('core-test'),
    settings: { stackCapture: createStackCapture({ maxFrames: 20, ownDirs: ['/nonexistent'] }) },
    diag: logger,
  });
}

beforeEach(() => {
  exporter = new InMemorySpanExporter();
  provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  meterProvider = new MeterProvider();
  errors = [];
  core = coreWith(() => provider.getTracer('core-test'));
});

function requestFrom(pool: FakePoolObject) {
  return core.checkout(pool, probe, requestFrom)!;
}

describe('lease lifecycle', () => {
  it('request → grant → checkin: one span with wait, held and the call site', () => {
    const pool = { name: 'jobs', waiting: 0 };
    function takeWorker() {
      return requestFrom(pool);
    }
    const lease = takeWorker();
    expect(core.openLeaseCount).toBe(1);
    lease.granted();
    lease.checkin(false, requestFrom);
    expect(core.openLeaseCount).toBe(0);
    const [span] = exporter.getFinishedSpans();
    expect(span?.name).toBe('generic-pool checkout');
    expect(span?.attributes['db.client.connection.pool.name']).toBe('jobs');
    expect(span?.attributes['code.function.name']).toBe('takeWorker');
    expect(eventNamed(span!, 'pool.acquired')).toBeDefined();
    expect(span?.attributes['pool.pending_at_request']).toBeUndefined();
  });

  it('records pool.pending_at_request when the request had to queue', () => {
    const lease = requestFrom({ name: 'busy', waiting: 3 });
    lease.failed(new Error('ResourceRequest timed out'));
    const [span] = exporter.getFinishedSpans();
    expect(span?.attributes['pool.pending_at_request']).toBe(3);
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'ResourceRequest timed out' });
    expect(span?.attributes['error.type']).toBe('Error');
  });

  it('every transition happens at most once', () => {
    const lease = requestFrom({ name: 'p', waiting: 0 });
    lease.granted();
    lease.granted();
    lease.checkin(false, requestFrom);
    lease.checkin(false, requestFrom);
    lease.failed(new Error('late'));
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(1);
    expect(spans[0]?.events.filter((event) => event.name === 'pool.acquired')).toHaveLength(1);
    expect(spans[0]?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('a non-Error failure still ends the span with ERROR', () => {
    requestFrom({ name: 'p', waiting: 0 }).failed('pool is draining');
    expect(exporter.getFinishedSpans()[0]?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'pool is draining' });
  });

  it('callbacks run in the caller context even when invoked from another one', async () => {
    const tracer = provider.getTracer('core-test');
    const callerSpan = tracer.startSpan('caller');
    const lease = context.with(trace.setSpan(context.active(), callerSpan), () => requestFrom({ name: 'p', waiting: 0 }));
    const seen = await tracer.startActiveSpan('releaser', (other) => {
      other.end();
      return lease.runInCallerContext(function (this: { tag: string }, suffix: string) {
        return `${this.tag}${suffix}:${trace.getActiveSpan()?.spanContext().spanId}`;
      }, { tag: 'this-kept' }, ['!']);
    });
    expect(seen).toBe(`this-kept!:${callerSpan.spanContext().spanId}`);
  });
});

describe('bounded state', () => {
  it('ten thousand leases opened and checked in leave nothing behind', () => {
    const pool = { name: 'p', waiting: 0 };
    for (let i = 0; i < 10_000; i++) {
      const lease = requestFrom(pool);
      lease.granted();
      lease.checkin(false, requestFrom);
    }
    expect(core.openLeaseCount).toBe(0);
  });
});

describe('shutdown', () => {
  it('ends open leases with ERROR when the provider shuts down, before the processors stop', async () => {
    const held = requestFrom({ name: 'p', waiting: 0 });
    held.granted();
    requestFrom({ name: 'p', waiting: 0 }); // still waiting
    const exported: string[] = [];
    const original = exporter.export.bind(exporter);
    exporter.export = (spans, done) => {
      exported.push(...spans.map((span) => `${span.name}:${span.status.code}`));
      original(spans, done);
    };
    await provider.shutdown();
    expect(exported).toEqual(['generic-pool checkout:2', 'generic-pool checkout:2']);
    expect(core.openLeaseCount).toBe(0);
  });

  it('detaching restores the provider own shutdown', () => {
    requestFrom({ name: 'p', waiting: 0 });
    expect(Object.prototype.hasOwnProperty.call(provider, 'shutdown')).toBe(true);
    core.stop();
    expect(Object.prototype.hasOwnProperty.call(provider, 'shutdown')).toBe(false);
    expect(provider.shutdown).toBe(TracerProvider.prototype.shutdown);
  });
});

describe('containment', () => {
  it('a failing tracer: checkout returns undefined, one diag error, nothing thrown', () => {
    core = coreWith(() => {
      throw new Error('tracer exploded');
    });
    expect(requestFrom({ name: 'p', waiting: 0 })).toBeUndefined();
    expect(requestFrom({ name: 'p', waiting: 0 })).toBeUndefined();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('checkout');
  });
});
