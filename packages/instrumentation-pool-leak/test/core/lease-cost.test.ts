// What the production-cost work (#22) must not trade away: an unsampled checkout that leaks still
// names its exact call site; a lease does not keep its finished request span alive; every lease
// past the threshold is reported, even when no sweep ran before its checkin; an anonymous
// function has one name on spans, metrics and call paths (#20). Real generic-pool, real SDK.
import { context, ROOT_CONTEXT, trace, TraceFlags, type Span } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type * as GenericPoolModule from 'generic-pool';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { delay, genericPoolsOf, requireLibrary } from '../support/in-memory-resources';
import { createStackCapture } from '../../src/call-site/stack';
import type { Lease } from '../../src/core/lease';
import { LeaseCore } from '../../src/core/lease-core';
import { lineOf } from '../support/source-lines';
import { setupTracing } from '../support/tracing';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const THRESHOLD_MS = 1;
const tracing = setupTracing({ leakThresholdMs: THRESHOLD_MS });
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const { newPool } = genericPoolsOf(genericPool);
const CHECKOUT = 'generic-pool checkout';
const LEAK = 'generic-pool leak';

beforeEach(() => tracing.exporter.reset());
afterAll(() => tracing.instrumentation.disable());

/** A request that arrived with a `traceparent` of these flags: with 00, its span and its children do not record. */
function inRequestFlagged<T>(traceFlags: TraceFlags, work: () => Promise<T>): Promise<T> {
  const remote = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    traceFlags,
    isRemote: true,
  });
  return tracing.tracer.startActiveSpan('request', {}, remote, async (span) => {
    try {
      return await work();
    } finally {
      span.end();
    }
  });
}

/** Spins without yielding: no timer, no sweep can run meanwhile (a loop busy with other work). */
function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

async function leakPoints(): Promise<{ attributes: Record<string, unknown>; value: number }[]> {
  const points = await tracing.metricPoints('pool.leak.suspected');
  return points.map((point) => ({ attributes: point.attributes, value: Number(point.value) }));
}

describe('an unsampled checkout', () => {
  it('that leaks still names its exact call site (function, file, line) on the leak counter and in the holders', async () => {
    // Node's own formatting, as in production: vitest's source-map formatter makes every capture
    // read its frames as text at once, and the deferred reading would go untested.
    const savedPrepare = Error.prepareStackTrace;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    onTestFinished(() => {
      Error.prepareStackTrace = savedPrepare;
    });
    const pool = newPool({ max: 1 });
    async function takeAt() {
      return pool.acquire();
    }
    // The same place, through the same callers, once in a sampled request whose checkout span
    // records the call site read at once: what the unsampled checkout must name.
    await pool.release(await inRequestFlagged(TraceFlags.SAMPLED, takeAt));
    const [sampled] = tracing.spansNamed(CHECKOUT);
    expect(sampled?.attributes['code.function.name']).toBe('takeAt');
    const leaksAt = async () =>
      (await leakPoints())
        .filter((point) => point.attributes['code.function.name'] === 'takeAt')
        .map((point) => ({ ...point, attributes: pick(point.attributes) }));
    const before = await leaksAt();
    tracing.exporter.reset();
    const resource = await inRequestFlagged(TraceFlags.NONE, takeAt);
    await delay(THRESHOLD_MS * 5);
    await pool.release(resource);
    // Nothing recorded the checkout: the call site came from the frames captured at the checkout.
    expect(tracing.spansNamed(CHECKOUT)).toHaveLength(0);
    const after = await leakPoints().then(() => leaksAt());
    expect(after.map((point) => point.attributes)).toEqual([pick(sampled!.attributes)]);
    expect(after[0]!.value - (before[0]?.value ?? 0)).toBe(1);
    expect(String(after[0]!.attributes['code.file.path'])).toMatch(/lease-cost\.test\.ts$/);
  });
});

describe('an unsampled checkout that queues', () => {
  it('names its exact call site on its stall, from its own frames, as a sampled one from the same place does', async () => {
    const savedPrepare = Error.prepareStackTrace;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    tracing.instrumentation.setConfig({ leakThresholdMs: THRESHOLD_MS, waitThresholdMs: 20 });
    onTestFinished(() => {
      Error.prepareStackTrace = savedPrepare;
      tracing.instrumentation.setConfig({ leakThresholdMs: THRESHOLD_MS });
    });
    const pool = newPool({ max: 1 });
    async function queueBehind() {
      return pool.acquire();
    }
    const stalledAt = async () =>
      (await tracing.metricPoints('pool.wait.stalled'))
        .filter((point) => point.attributes['code.function.name'] === 'queueBehind')
        .map((point) => ({ attributes: pick(point.attributes), value: Number(point.value) }));
    const stallOnce = async (traceFlags: TraceFlags) => {
      const held = await pool.acquire();
      const before = (await stalledAt())[0]?.value ?? 0;
      const waiting = inRequestFlagged(traceFlags, queueBehind);
      for (let turn = 0; turn < 200 && ((await stalledAt())[0]?.value ?? 0) === before; turn++) await delay(10);
      await pool.release(held);
      await pool.release(await waiting);
      return (await stalledAt())[0]!;
    };
    const sampled = await stallOnce(TraceFlags.SAMPLED);
    const [sampledCheckout] = tracing.spansNamed(CHECKOUT).filter((span) => span.attributes['code.function.name'] === 'queueBehind');
    expect(sampled.attributes).toEqual(pick(sampledCheckout!.attributes));
    tracing.exporter.reset();
    const unsampled = await stallOnce(TraceFlags.NONE);
    // Its checkout span never recorded; the counter's call site came from its own unread frames.
    expect(tracing.spansNamed(CHECKOUT).filter((span) => span.attributes['code.function.name'] === 'queueBehind')).toHaveLength(0);
    expect(unsampled.attributes).toEqual(sampled.attributes);
    expect(unsampled.value).toBe(sampled.value + 1);
    expect(String(unsampled.attributes['code.file.path'])).toMatch(/lease-cost\.test\.ts$/);
  });
});

/** The call-site attributes a leak counter point and a checkout span share. */
function pick(attributes: Record<string, unknown>): Record<string, unknown> {
  const keys = ['code.function.name', 'code.file.path', 'code.line.number', 'pool.call_path'];
  return Object.fromEntries(keys.map((key) => [key, attributes[key]]));
}

describe('a leased connection', () => {
  // On the lease core itself: generic-pool's own loan keeps a promise made in the request, and
  // with it (AsyncContextFrame) the request's context, for as long as the resource is out.
  it('does not keep its finished parent request span alive; its leak span still names that parent', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    const tracer = provider.getTracer('lease-cost-test');
    const core = new LeaseCore({
      tracer: () => tracer,
      tracerProvider: () => provider,
      meter: new MeterProvider().getMeter('lease-cost-test'),
      settings: { stackCapture: createStackCapture({ maxFrames: 10, ownDirs: ['/nonexistent'] }), leakThresholdMs: 60_000 },
    });
    // Held by the test: a pool object collected ends its leases (pool-registry.ts).
    const poolObject = {};
    const connection = { id: 1 };
    let requestSpan: WeakRef<Span> | undefined;
    let requestSpanId = '';
    function handleRequest(): Lease {
      const span = tracer.startSpan('GET /leaky', { attributes: { 'http.route': '/leaky', payload: 'x'.repeat(1000) } });
      requestSpan = new WeakRef(span);
      requestSpanId = span.spanContext().spanId;
      const lease = context.with(trace.setSpan(context.active(), span), () => {
        const taken = core.checkout(poolObject, { describe: () => ({ library: 'generic-pool' }) }, handleRequest)!;
        taken.granted(connection);
        return taken;
      });
      span.end();
      return lease;
    }
    const lease = handleRequest();
    exporter.reset();
    // deref() keeps its target alive to the end of the job it runs in: read only after collecting.
    for (let round = 0; round < 3; round++) {
      collectGarbage();
      await delay(5);
    }
    expect(requestSpan!.deref()).toBeUndefined();
    expect(lease.isHeld).toBe(true);
    // Past the threshold: the leak report parents to the request through the span context kept.
    core.configure({ ...core['settings'], leakThresholdMs: 1 });
    busyFor(3);
    lease.checkin(false, handleRequest);
    const [leak] = exporter.getFinishedSpans().filter((span) => span.name === LEAK);
    expect(leak?.parentSpanContext?.spanId).toBe(requestSpanId);
    core.stop();
  });
});

describe('every lease over the threshold is reported', () => {
  it('2 000 leases held past a 1 ms threshold and checked in before any sweep ran: 2 000 reports', async () => {
    const pool = newPool({ max: 2000 });
    const leases = 2000;
    const resources = await tracing.inRequest('GET /burst', () => Promise.all(Array.from({ length: leases }, () => pool.acquire())));
    // Sweeps may have run during the acquires; from here on none can until every lease is back.
    const reportedBefore = tracing.spansNamed(LEAK).length;
    busyFor(THRESHOLD_MS * 3);
    const released = resources.map((resource) => pool.release(resource));
    expect(tracing.spansNamed(LEAK).length).toBe(leases);
    expect(reportedBefore).toBeLessThanOrEqual(leases);
    await Promise.all(released);
    const checkouts = tracing.spansNamed(CHECKOUT);
    expect(checkouts).toHaveLength(leases);
    // Once each: a lease a sweep reported is not reported again at its checkin.
    for (const span of checkouts) expect(span.events.filter((event) => event.name === 'pool.leak.suspected')).toHaveLength(1);
  });
});

describe('an anonymous function', () => {
  it('has one name on the checkout span, the leak span, the leak counter and the call path', async () => {
    const pool = newPool({ max: 1 });
    const resource = await tracing.inRequest('GET /anonymous', () => (async () => pool.acquire())()); // line:anonymous-acquire
    busyFor(THRESHOLD_MS * 3);
    await pool.release(resource);
    const [checkout] = tracing.spansNamed(CHECKOUT);
    const [leak] = tracing.spansNamed(LEAK);
    const line = lineOf(import.meta.url, 'anonymous-acquire');
    expect(checkout?.attributes['code.line.number']).toBe(line);
    expect(checkout?.attributes['code.function.name']).toBe('<anonymous>');
    expect(leak?.attributes['code.function.name']).toBe('<anonymous>');
    expect(String(checkout?.attributes['pool.call_path'])).toMatch(/^<anonymous> \(/);
    const points = (await leakPoints()).filter((point) => point.attributes['code.line.number'] === line);
    expect(points.map((point) => point.attributes['code.function.name'])).toEqual(['<anonymous>']);
  });
});
