// Forces garbage collections during the demo. A small heap may go the whole run without a major
// GC, and then the FinalizationRegistry safety net would never run: the finalizer checkins the
// demo is meant to show would not happen. Production code never does this.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface ForcedGc {
  collectNow(): void;
  stop(): void;
}

export function startForcedGc(intervalMs: number): ForcedGc {
  const collect = exposeGc();
  const timer = setInterval(collect, intervalMs);
  timer.unref();
  return { collectNow: collect, stop: () => clearInterval(timer) };
}

/**
 * `gc` without --expose-gc on the command line: setting the flag at run time makes V8 give new
 * contexts a `gc` function (the same trick the instrumentation's finalizer tests use).
 */
function exposeGc(): () => void {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as () => void;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
