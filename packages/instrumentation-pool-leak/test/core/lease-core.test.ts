// The lease core on its own: no pool library, only the real SDK.
import { context, SpanStatusCode, trace, type DiagLogger, type HrTime, type Tracer } from '@opentelemetry/api';
import { hrTimeDuration, hrTimeToMilliseconds } from '@opentelemetry/core';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { AlwaysOffSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { beforeEach, describe, expect, it } from 'vitest';
import { LeaseCore, type PoolProbe } from '../../src/core/lease-core';
import { createStackCapture } from '../../src/call-site/stack';
import { eventNamed } from '../support/spans';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

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
/**
 * Pools a test's leases belong to, kept reachable for the whole test: a pool object the GC
 * collects ends its open leases ("the pool is gone"), which under load happened mid-test.
 */
let livePools: FakePoolObject[];

function livePool(name: string, waiting = 0): FakePoolObject {
  const pool = { name, waiting };
  livePools.push(pool);
  return pool;
}

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
  livePools = [];
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

  it('an open lease holds no event object; the grant is written later at its own time, events in order', async () => {
    const lease = requestFrom(livePool('jobs'));
    await sleep(20);
    lease.granted();
    // What every open lease keeps: the span without any event of its own (memory per open lease).
    expect((lease.span as unknown as ReadableSpan).events).toHaveLength(0);
    expect((lease.span as unknown as ReadableSpan).attributes['pool.wait_ms']).toBeUndefined();
    // A collection while the lease is open, as a loaded machine has: the pool must still be there.
    collectGarbage();
    await sleep(30);
    lease.markLeakSuspected(30);
    // Reported: still nothing on the live span (a mass report leaves little for the GC to copy).
    expect((lease.span as unknown as ReadableSpan).events).toHaveLength(0);
    await sleep(5);
    lease.checkin(false, requestFrom);
    const [span] = exporter.getFinishedSpans();
    expect(span!.events.map((event) => event.name)).toEqual(['pool.acquired', 'pool.leak.suspected', 'pool.leak.returned']);
    const msAfterStart = (time: HrTime) => hrTimeToMilliseconds(hrTimeDuration(span!.startTime, time));
    const waitMs = Number(span!.attributes['pool.wait_ms']);
    expect(waitMs).toBeGreaterThanOrEqual(19);
    expect(waitMs).toBeLessThan(45);
    // The event carries the grant's time, not the time it was written (≥ 30 ms later).
    expect(Math.abs(msAfterStart(span!.events[0]!.time) - waitMs)).toBeLessThan(5);
    expect(msAfterStart(span!.events[1]!.time)).toBeGreaterThanOrEqual(waitMs + 29);
  });

  it('a request that queues holds no span while it waits; its span still starts at the request', async () => {
    const started: string[] = [];
    provider = new TracerProvider({
      spanProcessors: [
        { onStart: (span) => started.push(span.name), onEnd: () => {}, forceFlush: async () => {}, shutdown: async () => {} },
        new SimpleSpanProcessor({ exporter }),
      ],
    });
    core = coreWith(() => provider.getTracer('core-test'));
    const pool = { name: 'full', waiting: 2 };
    function queueBehindOthers() {
      return requestFrom(pool);
    }
    const timedOut = queueBehindOthers();
    const served = queueBehindOthers();
    await sleep(25);
    // Waiting: nothing started in the SDK yet (a storm of waiters keeps no span objects alive).
    expect(started).toEqual([]);
    timedOut.failed(new Error('ResourceRequest timed out'));
    served.granted();
    await sleep(10);
    served.checkin(false, requestFrom);
    expect(started).toEqual(['generic-pool checkout', 'generic-pool checkout']);
    const [failedSpan, servedSpan] = exporter.getFinishedSpans();
    const durationMs = (span: ReadableSpan) => hrTimeToMilliseconds(span.duration);
    expect(durationMs(failedSpan!)).toBeGreaterThanOrEqual(24);
    expect(failedSpan!.attributes['pool.pending_at_request']).toBe(2);
    expect(failedSpan!.attributes['code.function.name']).toBe('queueBehindOthers');
    expect(failedSpan!.status.code).toBe(SpanStatusCode.ERROR);
    expect(durationMs(servedSpan!)).toBeGreaterThanOrEqual(34);
    expect(Number(servedSpan!.attributes['pool.wait_ms'])).toBeGreaterThanOrEqual(24);
    expect(servedSpan!.events.map((event) => event.name)).toEqual(['pool.acquired']);
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

describe('what an ended lease keeps of its span', () => {
  it('a recording span is let go of for its span context; a span that never recorded is kept as it is, nothing new made', () => {
    const pool = livePool('p');
    const sampled = requestFrom(pool);
    sampled.granted();
    const recording = sampled.span;
    sampled.checkin(false, requestFrom);
    expect(recording.isRecording()).toBe(false); // ended
    expect(sampled.span).not.toBe(recording);
    expect(sampled.span.spanContext()).toEqual(recording.spanContext());

    provider = new TracerProvider({ sampler: new AlwaysOffSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    core = coreWith(() => provider.getTracer('core-test'));
    const unsampled = requestFrom(pool);
    unsampled.granted();
    const nonRecording = unsampled.span;
    expect(nonRecording.isRecording()).toBe(false);
    unsampled.checkin(false, requestFrom);
    expect(unsampled.span).toBe(nonRecording);
    expect(exporter.getFinishedSpans()).toHaveLength(1);
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
    const pool = livePool('p');
    const held = requestFrom(pool);
    held.granted();
    requestFrom(pool); // still waiting
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

describe('leases found by connection object (libraries that release and query by object)', () => {
  const exhaustedProbe: PoolProbe<FakePoolObject> = {
    ...probe,
    isTimeout: (error) => error instanceof Error && error.message === 'acquire timeout',
    isExhausted: (error) => error instanceof Error && /acquire timeout|queue full/.test(error.message),
  };

  it('releaseConnection checks in the lease that holds the connection, then reports misuse', () => {
    const pool = { name: 'jobs', waiting: 0 };
    const connection = { id: 1 };
    const lease = requestFrom(pool);
    lease.granted(connection);
    expect(core.leaseOf(connection)).toBe(lease);
    core.releaseConnection(connection, false, requestFrom);
    expect(lease.isOpen).toBe(false);
    core.releaseConnection(connection, false, requestFrom);
    const [span] = exporter.getFinishedSpans().filter((s) => s.name === 'generic-pool checkout');
    const invalid = exporter.getFinishedSpans().find((s) => s.name === 'generic-pool release.invalid');
    expect(span!.attributes['pool.checkin.destroyed']).toBeUndefined();
    expect(eventNamed(invalid!, 'pool.release.invalid')?.attributes?.['pool.release.reason']).toBe('double_release');
  });

  it('a release after the connection was destroyed is reported as such', () => {
    const pool = { name: 'jobs', waiting: 0 };
    const connection = { id: 2 };
    const lease = requestFrom(pool);
    lease.granted(connection);
    core.releaseConnection(connection, true, requestFrom);
    core.releaseConnection(connection, false, requestFrom);
    const checkout = exporter.getFinishedSpans().find((s) => s.name === 'generic-pool checkout')!;
    expect(checkout.attributes['pool.checkin.destroyed']).toBe(true);
    const invalid = exporter.getFinishedSpans().find((s) => s.name === 'generic-pool release.invalid')!;
    expect(eventNamed(invalid, 'pool.release.invalid')?.attributes?.['pool.release.reason']).toBe('destroyed');
  });

  it('a connection no lease was granted (taken before enable) is left alone', () => {
    core.releaseConnection({ id: 3 }, false, requestFrom);
    core.statementIssued({ id: 3 }, requestFrom);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    expect(errors).toEqual([]);
  });

  it('the connection is re-bound to its next lease', () => {
    const pool = { name: 'jobs', waiting: 0 };
    const connection = { id: 4 };
    const first = requestFrom(pool);
    first.granted(connection);
    core.releaseConnection(connection, false, requestFrom);
    const second = requestFrom(pool);
    second.granted(connection);
    expect(core.leaseOf(connection)).toBe(second);
    core.releaseConnection(connection, false, requestFrom);
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['generic-pool checkout', 'generic-pool checkout']);
  });

  it('pool.exhausted names held leases oldest grant first and skips waiting ones; other failures add nothing', () => {
    const pool = { name: 'jobs', waiting: 0 };
    function acquireEntry() {
      return core.checkout(pool, exhaustedProbe, acquireEntry)!;
    }
    function holdFirst() {
      return acquireEntry();
    }
    function holdSecond() {
      return acquireEntry();
    }
    // Requested in one order, granted in the other: holders follow the grant.
    const requestedFirst = holdFirst();
    const requestedSecond = holdSecond();
    requestedSecond.granted({});
    requestedFirst.granted({});
    const starved = core.checkout(pool, exhaustedProbe, requestFrom)!;
    const stillWaiting = core.checkout(pool, exhaustedProbe, requestFrom)!;
    starved.failed(new Error('queue full'));
    stillWaiting.failed(new Error('connection refused'));
    const failed = exporter.getFinishedSpans().filter((s) => s.status.code === SpanStatusCode.ERROR);
    const holders = eventNamed(failed[0]!, 'pool.exhausted')?.attributes?.['pool.holders'] as string[];
    expect(holders.map((holder) => holder.split(' ')[0])).toEqual(['holdSecond', 'holdFirst']);
    expect(holders[0]).toMatch(/^holdSecond \(.*lease-core\.test\.ts:\d+\) held \d+ ms — idle \d+ ms$/);
    expect(eventNamed(failed[0]!, 'pool.exhausted')?.attributes?.['pool.holders.count']).toBe(2);
    expect(eventNamed(failed[0]!, 'pool.exhausted')?.attributes?.['db.client.connection.max']).toBe(2);
    expect(eventNamed(failed[1]!, 'pool.exhausted')).toBeUndefined();
  });

  it('failures within one millisecond share the holders list only while nothing changed in between', () => {
    const pool = { name: 'jobs', waiting: 0 };
    const connection = { id: 5 };
    const holder = core.checkout(pool, exhaustedProbe, requestFrom)!;
    holder.granted(connection);
    core.statementIssued(connection, requestFrom, 'SELECT pg_sleep(1)');
    const failOne = () => {
      const error = new Error('acquire timeout');
      core.checkout(pool, exhaustedProbe, requestFrom)!.failed(error);
      return (error as Error & { poolHolders: readonly string[] }).poolHolders;
    };
    // Synchronous, so almost always within one millisecond; each step must name what is true then.
    const whileBusy = failOne();
    const stillBusy = failOne();
    holder.statementSettled();
    const afterSettled = failOne();
    const second = core.checkout(pool, exhaustedProbe, requestFrom)!;
    second.granted({ id: 6 });
    const afterGrant = failOne();
    expect(whileBusy[0]).toMatch(/— busy \d+ ms, last SELECT$/);
    expect(stillBusy[0]).toMatch(/— busy \d+ ms, last SELECT$/);
    expect(afterSettled[0]).toMatch(/— idle \d+ ms, last SELECT$/);
    expect(afterGrant).toHaveLength(2);
  });

  it('a release after the provider shutdown ended the lease is not reported as invalid', () => {
    const pool = { name: 'jobs', waiting: 0 };
    const connection = { id: 5 };
    requestFrom(pool).granted(connection);
    // What the hook on the provider's shutdown does first; the provider itself keeps exporting here.
    core.endOpenLeases();
    core.releaseConnection(connection, false, requestFrom);
    expect(errors).toEqual([]);
    const names = exporter.getFinishedSpans().map((span) => span.name);
    expect(names).toEqual(['generic-pool checkout']);
  });
});
