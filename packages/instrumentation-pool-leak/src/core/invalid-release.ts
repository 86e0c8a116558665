import { SpanKind, trace, type Attributes, type SpanContext, type Tracer } from '@opentelemetry/api';
import type { CapturedStack } from '../call-site/stack';
import { ATTR_POOL_RELEASE_REASON, ATTR_POOL_RELEASE_STACKTRACE, EVENT_POOL_RELEASE_INVALID } from '../signals/semconv';
import type { TrackedPool } from './tracked-pool';

/** Why a release was not a valid checkin. Values of `pool.release.reason`. */
export type InvalidReleaseReason = 'double_release' | 'destroyed' | 'foreign';

/** Attributes of a `pool.release.invalid` event. */
export function invalidReleaseAttributes(reason: InvalidReleaseReason, stack: CapturedStack | undefined): Attributes {
  return stack === undefined
    ? { [ATTR_POOL_RELEASE_REASON]: reason }
    : { [ATTR_POOL_RELEASE_REASON]: reason, [ATTR_POOL_RELEASE_STACKTRACE]: stack.text };
}

/**
 * Records an invalid release whose checkout span has already ended, where the mistake happens:
 * on the span active at the release, or, with none recording, on a zero-length
 * `<library> release.invalid` span linked to the checkout span.
 */
export function reportLateInvalidRelease(
  tracer: Tracer,
  pool: TrackedPool,
  checkout: SpanContext,
  reason: InvalidReleaseReason,
  stack: CapturedStack | undefined,
): void {
  const attributes = invalidReleaseAttributes(reason, stack);
  const active = trace.getActiveSpan();
  if (active !== undefined && active.isRecording()) {
    active.addEvent(EVENT_POOL_RELEASE_INVALID, attributes);
    return;
  }
  const span = tracer.startSpan(`${pool.description.library} release.invalid`, {
    kind: SpanKind.INTERNAL,
    attributes: pool.attributes,
    links: [{ context: checkout }],
  });
  span.addEvent(EVENT_POOL_RELEASE_INVALID, attributes);
  span.end();
}
