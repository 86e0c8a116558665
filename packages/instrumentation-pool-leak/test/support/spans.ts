// Assertions by name: span names, event names, attribute keys — never by position.
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import { expect } from 'vitest';

export function eventNamed(span: ReadableSpan, name: string): TimedEvent | undefined {
  return span.events.find((event) => event.name === name);
}

export function eventNames(span: ReadableSpan): string[] {
  return span.events.map((event) => event.name);
}

/** The one span with this name whose parent is `parent`'s span id. */
export function childOf(spans: readonly ReadableSpan[], parent: ReadableSpan): ReadableSpan[] {
  const parentId = parent.spanContext().spanId;
  return spans.filter((span) => span.parentSpanContext?.spanId === parentId);
}

/** Every attribute value of every span, as text: to prove what is not in there. */
export function allAttributeText(spans: readonly ReadableSpan[]): string {
  return spans
    .flatMap((span) => [
      ...Object.values(span.attributes),
      ...span.events.flatMap((event) => Object.values(event.attributes ?? {})),
    ])
    .map((value) => (Array.isArray(value) ? value.join(' ') : String(value)))
    .join('\n');
}

/** A checkout span that completed normally: granted, held, checked in. */
export function expectCheckedIn(span: ReadableSpan): void {
  expect(span.ended).toBe(true);
  expect(span.status.code).not.toBe(2);
  expect(eventNamed(span, 'pool.acquired')).toBeDefined();
  expect(span.attributes['pool.wait_ms']).toBeTypeOf('number');
  expect(span.attributes['pool.held_ms']).toBeTypeOf('number');
}
