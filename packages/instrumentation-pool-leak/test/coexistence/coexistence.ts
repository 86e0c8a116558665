// Ours next to the contrib instrumentation of the same pool library, in one process, against the
// real server: the application sees what it sees with neither, both sets of spans are produced in
// the request's trace, and switching either one off leaves the other working. Each suite file
// fixes one library and one construction order (construction is when an instrumentation installs
// its require hook, so it decides who patches first); test files run in processes of their own.
import type { Instrumentation } from '@opentelemetry/instrumentation';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PoolLeakInstrumentation } from '../../src';
import { setupTracing, type TestTracing } from '../support/tracing';

export type Order = 'ours first' | 'contrib first';

/** What the application observed: values and error messages, in order. */
export type Transcript = unknown[];

/** The application side of one library: pools built on the real server, driven as an app would. */
export interface Workload {
  /** Runs every operation inside `inRequest` spans and returns what the application saw. */
  run(inRequest: TestTracing['inRequest']): Promise<Transcript>;
  close(): Promise<void>;
}

export interface CoexistenceCase {
  /** Our checkout span name, e.g. `pg-pool checkout`. */
  readonly checkoutSpan: string;
  /** The contrib instrumentation's scope (its package name). */
  readonly contribScope: string;
  /** Creates (and so enables) the contrib instrumentation. */
  createContrib(): Instrumentation;
  /** Requires the library (after both instrumentations exist) and builds the workload; runs in beforeAll. */
  load(): Workload;
  /** How many checkouts one run makes (ours), and at least how many contrib spans. */
  readonly checkouts: number;
  readonly contribSpans: number;
}

/** Declares the coexistence tests of one library in one construction order. */
export function describeCoexistence(order: Order, testCase: CoexistenceCase): void {
  let contrib = order === 'contrib first' ? testCase.createContrib() : undefined;
  const tracing = setupTracing();
  contrib ??= testCase.createContrib();
  contrib.setTracerProvider(tracing.provider);
  const ours: PoolLeakInstrumentation = tracing.instrumentation;
  // Loaded once the tests run (after both instrumentations exist): a suite skipped for want of a
  // server never connects.
  let workload: Workload;
  beforeAll(() => {
    workload = testCase.load();
  });

  afterAll(async () => {
    await workload?.close();
    contrib.disable();
    ours.disable();
  });

  const run = async () => {
    tracing.exporter.reset();
    const transcript = await workload.run(tracing.inRequest);
    const spans = tracing.exporter.getFinishedSpans();
    return {
      transcript,
      spans,
      requests: spans.filter((span) => span.instrumentationScope.name === 'pool-leak-tests'),
      checkouts: spans.filter((span) => span.name === testCase.checkoutSpan),
      contribSpans: spans.filter((span) => span.instrumentationScope.name === testCase.contribScope),
    };
  };
  it('both enabled: the application sees the same values and errors as with neither', async () => {
    const both = await run();
    contrib.disable();
    ours.disable();
    try {
      const neither = await run();
      expect(neither.spans.filter((span) => span.instrumentationScope.name !== 'pool-leak-tests')).toEqual([]);
      expect(both.transcript).toEqual(neither.transcript);
    } finally {
      enableInOrder(order, ours, contrib);
    }
  });

  it('both enabled: our checkouts and their spans, all in the requests\' traces', async () => {
    const { checkouts, contribSpans, requests } = await run();
    const requestSpanIds = new Set(requests.map((span) => span.spanContext().spanId));
    const requestTraceIds = new Set(requests.map((span) => span.spanContext().traceId));
    // With theirs wrapped around ours, their acquire span is active when ours starts: ours then
    // nests in it, one level below the request.
    const contribUnderRequest = new Set(
      contribSpans.filter((span) => requestSpanIds.has(parentId(span) ?? '')).map((span) => span.spanContext().spanId),
    );
    expect(checkouts.length, 'our checkout spans').toBe(testCase.checkouts);
    for (const checkout of checkouts) {
      const parent = parentId(checkout) ?? '';
      expect(requestSpanIds.has(parent) || contribUnderRequest.has(parent), 'checkout under its request').toBe(true);
    }
    expect(contribSpans.length, 'contrib spans').toBeGreaterThanOrEqual(testCase.contribSpans);
    for (const span of contribSpans) expect(requestTraceIds.has(span.spanContext().traceId), `${span.name} in a request's trace`).toBe(true);
  });

  it('ours disabled: the contrib instrumentation still works, ours records nothing', async () => {
    ours.disable();
    try {
      const { checkouts, contribSpans } = await run();
      expect(checkouts).toEqual([]);
      expect(contribSpans.length).toBeGreaterThanOrEqual(testCase.contribSpans);
    } finally {
      enableInOrder(order, ours, contrib);
    }
  });

  it('contrib disabled: ours still works, theirs records nothing', async () => {
    contrib.disable();
    try {
      const { checkouts, contribSpans } = await run();
      expect(contribSpans).toEqual([]);
      expect(checkouts.length).toBe(testCase.checkouts);
    } finally {
      enableInOrder(order, ours, contrib);
    }
  });
}

/** Re-enables (re-patches the loaded library) in the construction order, as at start. */
function enableInOrder(order: Order, ours: Instrumentation, contrib: Instrumentation): void {
  const [first, second] = order === 'ours first' ? [ours, contrib] : [contrib, ours];
  first.enable();
  second.enable();
}

function parentId(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}
