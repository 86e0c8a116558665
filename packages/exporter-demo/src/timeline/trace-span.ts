// A span as the timeline reads it from a trace file, whatever the file's format: times in epoch
// milliseconds, attributes as plain values. Both readers (OTLP/JSON, Jaeger JSON) produce this.

export type TraceValue = string | number | boolean | readonly (string | number | boolean)[];
export type TraceAttributes = Readonly<Record<string, TraceValue>>;

export interface TraceEvent {
  readonly name: string;
  readonly timeMs: number;
  readonly attributes: TraceAttributes;
}

export interface TraceSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: TraceAttributes;
  readonly events: readonly TraceEvent[];
  /** ERROR status, with its message (OTLP status code 2; Jaeger `otel.status_code=ERROR` or `error=true`). */
  readonly error: boolean;
  readonly statusMessage: string | undefined;
  /** Linked spans (OTLP links; Jaeger FOLLOWS_FROM references). */
  readonly links: readonly { readonly traceId: string; readonly spanId: string }[];
}

/** A trace file that cannot be read: says what is wrong and where. */
export class TraceFileError extends Error {
  override readonly name = 'TraceFileError';
}
