import { context, trace, type Attributes, type SpanContext } from '@opentelemetry/api';
import type { CapturedStack } from '../call-site/stack';
import { ATTR_POOL_USE_SPAN_ID, ATTR_POOL_USE_STACKTRACE, ATTR_POOL_USE_TRACE_ID } from '../signals/semconv';

/**
 * The trace active at a statement when it is neither the lease owner's (`ownerTraceId`) nor the
 * one last reported for this lease (`lastReported`): the shared-client race, where a connection
 * taken in one request runs a statement of another. One context lookup and two id comparisons
 * on the common path, no allocation.
 */
export function foreignTraceAt(ownerTraceId: string, lastReported: string | undefined): SpanContext | undefined {
  const active = trace.getSpanContext(context.active());
  if (active === undefined || active.traceId === ownerTraceId || active.traceId === lastReported) return undefined;
  return active;
}

/** Attributes of the `pool.use.foreign_context` event. */
export function foreignUseAttributes(foreign: SpanContext, stack: CapturedStack | undefined): Attributes {
  const attributes: Record<string, string> = {
    [ATTR_POOL_USE_TRACE_ID]: foreign.traceId,
    [ATTR_POOL_USE_SPAN_ID]: foreign.spanId,
  };
  if (stack !== undefined) attributes[ATTR_POOL_USE_STACKTRACE] = stack.text;
  return attributes;
}

/** Links the span active now (the foreign request's, when it records) to the checkout span. */
export function linkActiveSpanTo(checkout: SpanContext): void {
  const active = trace.getActiveSpan();
  if (active !== undefined && active.isRecording()) active.addLink({ context: checkout });
}
