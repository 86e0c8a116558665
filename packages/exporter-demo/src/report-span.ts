// What the leak report reads of a span. A live ReadableSpan has it; so has a span read back from
// a trace file (timeline/), which lets the HTML page reuse the console report's rules.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';

export type ReportSpan = Pick<ReadableSpan, 'name' | 'attributes' | 'events' | 'status' | 'duration'>;
