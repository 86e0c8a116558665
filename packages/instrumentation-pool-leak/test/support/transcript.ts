// What an application sees of a pool, written down in order, for the equivalence property tests:
// the same operations run once without and once with the instrumentation must write the same
// lines.
import { isPatchedByPoolLeak } from '../../src/adapters/kit/patcher';
import fc from 'fast-check';
import { expect } from 'vitest';
import { delay, describeError, describeValue, diagMessagesDuring, flushMicrotasks, settledCount, tick, watchRejections } from './in-memory-resources';
import type { TestTracing } from './tracing';

/**
 * One run's transcript. Operations are steps: after each, queued promise reactions run
 * ({@link Transcript.endStep}), so lines are compared in the order the application would see
 * them step by step.
 *
 * Timeouts are the one wall-clock input. Steps between two long waits form a burst that is meant
 * to take no time next to the pools' acquire timeout; if a burst took longer than `burstLimitMs`
 * (the machine stalled, e.g. under a loaded CI), a timeout may have fired inside it in one run and
 * not in the other, so the run is marked `stalled` and the property discards it.
 */
export class Transcript {
  readonly lines: string[] = [];
  stalled = false;
  private burstStart = performance.now();
  private readonly stopWatching: () => void;

  constructor(private readonly burstLimitMs: number) {
    this.stopWatching = watchRejections((event) => this.note(event));
  }

  note(line: string): void {
    this.lines.push(line);
  }

  /** Writes how `result` settles, as the application would see it, and hands values to `onValue`. */
  follow<T>(label: string, result: PromiseLike<T>, onValue?: (value: T) => void): void {
    this.note(`${label} returns ${result instanceof Promise ? 'a Promise' : typeof result}`);
    result.then(
      (value) => {
        this.note(`${label} -> ${String(describeValue(value))}`);
        onValue?.(value);
      },
      (error: unknown) => this.note(`${label} -> ${describeError(error)}`),
    );
  }

  endStep(): Promise<void> {
    return flushMicrotasks();
  }

  /**
   * Waits for the pool's own shutdown (drain, destroy) to settle, at most `limitMs`: a run must
   * not leave work behind for the next one.
   */
  async settle(shutdown: PromiseLike<unknown>, limitMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, limitMs);
    });
    try {
      await Promise.race([Promise.resolve(shutdown).then(() => undefined), limit]);
    } finally {
      clearTimeout(timer);
    }
    await flushMicrotasks();
  }

  /** One event-loop turn (creates and destroys finish), then `ms` for timeouts to fire. */
  async longWait(ms: number): Promise<void> {
    await tick();
    this.endBurst();
    await delay(ms);
    await flushMicrotasks();
    this.burstStart = performance.now();
  }

  endBurst(): void {
    if (performance.now() - this.burstStart > this.burstLimitMs) this.stalled = true;
  }

  /** Lets Node report what is unhandled, then stops watching rejections. */
  async close(): Promise<void> {
    try {
      await delay(1);
      await delay(1);
    } finally {
      this.stopWatching();
    }
  }
}

/** Throws, with both transcripts in full, unless they are the same. */
export function expectSameTranscript(withIt: Transcript, without: Transcript): void {
  const expected = without.lines.join('\n');
  const actual = withIt.lines.join('\n');
  if (actual !== expected) {
    throw new Error(`transcripts differ\n--- without the instrumentation\n${expected}\n--- with it\n${actual}`);
  }
}

/**
 * fc.assert, with the failing run's own error written out in the message (counterexample, seed,
 * and what differed), so the test report shows it whatever the reporter does with causes.
 */
export async function assertProperty<Ts>(property: fc.IAsyncProperty<Ts>, params: fc.Parameters<Ts>): Promise<void> {
  const details = await fc.check(property, params);
  if (!details.failed) return;
  const error = details.errorInstance;
  const failure = error instanceof Error ? error.message : String(error);
  throw new Error(`${fc.defaultReportMessage(details) ?? 'property failed'}\n\n${failure.slice(0, 12_000)}`);
}

/** A pool library under the equivalence property: how to run a sequence, and what to check. */
export interface EquivalenceSubject<Operation> {
  readonly tracing: TestTracing;
  /** `<library> checkout`. */
  readonly spanName: string;
  /** The patched method as it is now: unwrapped in every baseline run, wrapped in every other. */
  readonly patchedMethod: () => unknown;
  readonly operation: fc.Arbitrary<Operation>;
  /** Runs the sequence on a fresh pool and ends it (drain, destroy); `acquires` = acquire calls. */
  run(operations: readonly Operation[]): Promise<{ readonly transcript: Transcript; readonly acquires: number }>;
  readonly runs: number;
  readonly maxOperations: number;
}

/** A lease still waiting when a run ends ends by its acquire timeout, well within this. */
const SETTLE_LIMIT_MS = 1000;

/**
 * The equivalence property: each random sequence runs once with the instrumentation disabled
 * (disable() puts the library's own methods back, asserted) and once enabled, on fresh pools in
 * this same process; the transcripts must be identical, the instrumented run must export one
 * checkout span per acquire, each ended once (the SDK reports a second end() through diag), and
 * leave no lease open. Runs in which the machine stalled long enough to fire a timeout in one run
 * only are discarded, at most `maxSkipsPerRun` times each.
 */
export async function assertSameWithAndWithoutInstrumentation<Operation>(subject: EquivalenceSubject<Operation>): Promise<void> {
  const { tracing } = subject;
  let compared = 0;
  const baselineRun = async (operations: readonly Operation[]) => {
    tracing.instrumentation.disable();
    try {
      expect(isPatchedByPoolLeak(subject.patchedMethod())).toBe(false);
      return await subject.run(operations);
    } finally {
      tracing.instrumentation.enable();
    }
  };
  await assertProperty(
    fc.asyncProperty(fc.array(subject.operation, { minLength: 1, maxLength: subject.maxOperations }), async (operations) => {
      // Every earlier run ended all its leases (a last acquire within its timeout): nothing of
      // it can show up in this one.
      expect(await settledCount(tracing.openLeaseCount, SETTLE_LIMIT_MS)).toBe(0);
      const baseline = await baselineRun(operations);
      expect(isPatchedByPoolLeak(subject.patchedMethod())).toBe(true);
      tracing.exporter.reset();
      let instrumented: { readonly transcript: Transcript; readonly acquires: number } | undefined;
      const diagMessages = await diagMessagesDuring(async () => {
        instrumented = await subject.run(operations);
      });
      fc.pre(!baseline.transcript.stalled && !instrumented!.transcript.stalled);
      expectSameTranscript(instrumented!.transcript, baseline.transcript);
      // An acquire still waiting at the end (tarn keeps those made after destroy()) ends by its
      // timeout; then every lease has ended and every span has been exported.
      expect(await settledCount(tracing.openLeaseCount, SETTLE_LIMIT_MS)).toBe(0);
      const spans = tracing.spansNamed(subject.spanName);
      expect(spans).toHaveLength(instrumented!.acquires);
      expect(new Set(spans.map((span) => span.spanContext().spanId)).size).toBe(spans.length);
      expect(diagMessages).toEqual([]);
      compared++;
    }),
    { numRuns: subject.runs, maxSkipsPerRun: 10 },
  );
  expect(compared).toBe(subject.runs);
}
