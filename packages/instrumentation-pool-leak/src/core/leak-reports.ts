import { SpanKind, type Tracer } from '@opentelemetry/api';
import type { PoolMetrics } from '../signals/metrics';
import { ATTR_POOL_HELD_MS } from '../signals/semconv';
import { LeakSweeper, NO_LEAK_WATCH, type LeakWatch } from './leak-detector';
import type { Lease, LeasePool } from './lease';
import { leaseStateAttributes } from './lease-state';

/** The leak watch for a threshold: the shared sweeper, or the no-op watch when detection is off. */
export function leakWatchFor(thresholdMs: number, onLeak: (lease: Lease, heldMs: number) => void): LeakWatch<Lease> {
  return thresholdMs > 0 ? new LeakSweeper<Lease>(thresholdMs, onLeak) : NO_LEAK_WATCH;
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
 * The watch for a new threshold: the running sweeper re-timed, or a new watch that takes over
 * every held lease of `heldIn` not yet reported, oldest grant first (none while `heldIn` is
 * undefined: the instrumentation is stopped). No lease is dropped from the watch, none is
 * reported twice.
 */
export function rewatch(
  watch: LeakWatch<Lease>,
  thresholdMs: number,
  onLeak: (lease: Lease, heldMs: number) => void,
  heldIn: Iterable<LeasePool> | undefined,
): LeakWatch<Lease> {
  if (watch instanceof LeakSweeper && thresholdMs > 0) {
    watch.setThreshold(thresholdMs);
    return watch;
  }
  watch.stop();
  const next = leakWatchFor(thresholdMs, onLeak);
  if (thresholdMs === 0 || heldIn === undefined) return next;
  const held: Lease[] = [];
  for (const pool of heldIn) for (const lease of pool.heldLeases) if (!lease.leakSuspected) held.push(lease);
  held.sort((a, b) => a.grantedAt - b.grantedAt);
  for (const lease of held) next.watch(lease);
  return next;
}
