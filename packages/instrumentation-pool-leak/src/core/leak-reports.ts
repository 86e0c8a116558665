import { SpanKind, type Tracer } from '@opentelemetry/api';
import type { PoolMetrics } from '../signals/metrics';
import { ATTR_POOL_HELD_MS } from '../signals/semconv';
import { LeakSweeper, NO_LEAK_WATCH, type LeakWatch } from './leak-detector';
import type { Lease } from './lease';
import type { LeaseQueue } from './lease-queue';
import { leaseStateAttributes } from './lease-state';

/** Where the leak sweep finds the held leases: the held queues of the pools with open leases. */
export type HeldQueues = () => Iterable<LeaseQueue<Lease>>;

/** The leak watch for a threshold: the shared sweeper, or the no-op watch when detection is off. */
export function leakWatchFor(thresholdMs: number, heldQueues: HeldQueues, onLeak: (lease: Lease, heldMs: number) => void): LeakWatch<Lease> {
  return thresholdMs > 0 ? new LeakSweeper<Lease>(thresholdMs, heldQueues, onLeak) : NO_LEAK_WATCH;
}

/**
 * A lease passed the threshold: an event on its checkout span, the call-site counter, and a
 * short `<library> leak` span ended at once, because the checkout span of a connection that
 * never comes back never ends, and Jaeger would show nothing.
 */
export function reportLeak(tracer: Tracer, metrics: PoolMetrics, lease: Lease, heldMs: number): void {
  const stateAttributes = leaseStateAttributes(lease.activityAt());
  lease.markLeakSuspected(heldMs, stateAttributes);
  metrics.recordLeak(lease.pool, lease.stack);
  const leakSpan = tracer.startSpan(
    `${lease.pool.description.library} leak`,
    {
      kind: SpanKind.INTERNAL,
      attributes: { ...lease.pool.attributes, ...lease.stack?.attributes, [ATTR_POOL_HELD_MS]: heldMs, ...stateAttributes },
      links: [{ context: lease.span.spanContext() }],
    },
    lease.callerContext,
  );
  leakSpan.end();
}

/**
 * The watch for a new threshold: the running sweeper re-timed, or a new watch that goes on from
 * where the held queues were last swept (when `watching`: the instrumentation is not stopped), so
 * no lease is dropped from the watch and none is reported twice.
 */
export function rewatch(
  watch: LeakWatch<Lease>,
  thresholdMs: number,
  heldQueues: HeldQueues,
  onLeak: (lease: Lease, heldMs: number) => void,
  watching: boolean,
): LeakWatch<Lease> {
  if (watch instanceof LeakSweeper && thresholdMs > 0) {
    watch.setThreshold(thresholdMs);
    return watch;
  }
  watch.stop();
  const next = leakWatchFor(thresholdMs, heldQueues, onLeak);
  if (watching) next.watch();
  return next;
}
