// What the server-truth tests of the lease state share: run a sequence of statements, then read
// the state the instrumentation reported on the leak span they cause.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { vi } from 'vitest';
import { until } from './mysql2';
import type { TestTracing } from './tracing';

/**
 * The `pool.lease.state` of the one `<library> leak` span the test caused: the (fake) clock is
 * moved past the leak threshold and the sweep's report awaited.
 */
export async function reportedLeaseState(tracing: TestTracing, library: string, thresholdMs: number): Promise<unknown> {
  vi.advanceTimersByTime(thresholdMs * 2);
  await until(`${library} leak span`, () => tracing.spansNamed(`${library} leak`).length > 0);
  const [leak] = tracing.spansNamed(`${library} leak`) as [ReadableSpan];
  return leak.attributes['pool.lease.state'];
}

/** Runs the statements one after the other; a failing one is expected and passed over. */
export async function runAll(run: (statement: string) => Promise<unknown>, statements: readonly string[]): Promise<void> {
  for (const statement of statements) await run(statement).catch(() => undefined);
}
