// Names of DESIGN.md that the instrumentation's public entry does not export yet: the stalled
// waiter (`pool.wait.stalled`) and the exhaustion cause (`pool.exhaustion.cause`) are being added
// to it. Each is taken from the package when it exports it, so nothing here can drift from it;
// the contract's spelling stands in until then. Delete this module once both are exported.
import * as poolLeak from 'opentelemetry-instrumentation-pool-leak';

function exported(name: string, contract: string): string {
  const value: unknown = (poolLeak as Readonly<Record<string, unknown>>)[name];
  return typeof value === 'string' ? value : contract;
}

export const EVENT_POOL_WAIT_STALLED = exported('EVENT_POOL_WAIT_STALLED', 'pool.wait.stalled');
export const ATTR_POOL_EXHAUSTION_CAUSE = exported('ATTR_POOL_EXHAUSTION_CAUSE', 'pool.exhaustion.cause');
/** Span name suffix of the stalled-waiter span (`<library> wait.stalled`). */
export const STALL_SPAN_SUFFIX = ' wait.stalled';
