// What a pooled connection keeps of its ended lease: enough to recognise a late release, not the
// whole checkout span. A pool of 100 000 connections would otherwise retain 100 000 ended spans.
import { context, createContextKey, ROOT_CONTEXT, trace, TraceFlags, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { TracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { LeaseCore, type PoolProbe } from '../../src/core/lease-core';
import { createStackCapture } from '../../src/call-site/stack';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

/** Remembers every started span weakly, and nothing else. */
class WeakSpanRecorder implements SpanProcessor {
  readonly started: WeakRef<Span>[] = [];
  onStart(span: Span): void {
    this.started.push(new WeakRef(span));
  }
  onEnd(): void {}
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

const probe: PoolProbe<object> = { describe: () => ({ library: 'generic-pool' }) };

/** A lease core on `provider`, leaks watched (a minute: none is reported in these tests). */
function coreOn(provider: TracerProvider): LeaseCore {
  return new LeaseCore({
    tracer: () => provider.getTracer('memory-test'),
    tracerProvider: () => provider,
    meter: new MeterProvider().getMeter('memory-test'),
    settings: { stackCapture: createStackCapture({ maxFrames: 10, ownDirs: ['/nonexistent'] }), leakThresholdMs: 60_000 },
  });
}

describe('an ended lease', () => {
  it('does not keep its checkout span alive while the pool keeps the connection', async () => {
    const recorder = new WeakSpanRecorder();
    const provider = new TracerProvider({ spanProcessors: [recorder] });
    const core = coreOn(provider);
    const pool = {};
    const connections = Array.from({ length: 20 }, (_, id) => ({ id }));
    function take(connection: object): void {
      const lease = core.checkout(pool, probe, take)!;
      lease.granted(connection);
      lease.checkin(false, take);
    }
    for (const connection of connections) take(connection);
    for (let round = 0; round < 5; round++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(recorder.started).toHaveLength(20);
    expect(recorder.started.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
    // The late release is still recognised: the lease of each connection is known.
    expect(core.leaseOf(connections[0])?.isOpen).toBe(false);
    core.stop();
  });

  it('keeps nothing of the context it was checked out in, unsampled request included', async () => {
    const provider = new TracerProvider();
    const core = coreOn(provider);
    const pool = {};
    const connection = { id: 1 };
    const requestData = createContextKey('request data');
    function take(): void {
      const lease = core.checkout(pool, probe, take)!;
      lease.granted(connection);
      lease.checkin(false, take);
    }
    // A request that arrived unsampled, carrying something big of its own in its context.
    const held = (() => {
      const payload = { rows: new Array(1000).fill('row') };
      const unsampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.NONE, isRemote: true });
      context.with(unsampled.setValue(requestData, payload), take);
      return new WeakRef(payload);
    })();
    for (let round = 0; round < 5; round++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // The connection still knows its ended lease, and that lease keeps the request's context no longer.
    expect(core.leaseOf(connection)?.isOpen).toBe(false);
    expect(held.deref()).toBeUndefined();
    core.stop();
  });
});
