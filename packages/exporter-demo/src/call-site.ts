// Call sites as the report shows them: read from a span's code.* attributes, from a stack, or from
// a `pool.holders` entry, and compared by one key.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';

/** Where a connection was checked out: the instrumentation's code.* call site. */
export interface CallSite {
  readonly functionName: string;
  readonly filePath: string | undefined;
  readonly line: number | undefined;
}

export function callSiteOf(span: ReadableSpan): CallSite {
  const { attributes } = span;
  const functionName = attributes['code.function.name'];
  const filePath = attributes['code.file.path'];
  const line = attributes['code.line.number'];
  return {
    functionName: typeof functionName === 'string' ? functionName : '<anonymous>',
    filePath: typeof filePath === 'string' ? filePath : undefined,
    line: typeof line === 'number' ? line : undefined,
  };
}

/** Equal for the same function, file and line: the key of every per-call-site table. */
export function siteKey(site: CallSite): string {
  return `${site.functionName}\u0000${site.filePath ?? ''}\u0000${site.line ?? ''}`;
}

/** One entry of a `pool.exhausted` event's `pool.holders`. */
export interface Holder {
  /** Undefined when the entry names no call site (stack capture was off). */
  readonly site: CallSite | undefined;
  readonly heldMs: number;
}

/** `"<function> (<file>:<line>) held <N> ms"`: the first ` (` ends the function; the file may hold more. */
const HOLDER = /^(.*?) \((.+):(\d+)\) held (\d+(?:\.\d+)?) ms$/;
const HELD_ONLY = /held (\d+(?:\.\d+)?) ms$/;

/** Parses a `pool.holders` entry; undefined if it does not have the documented shape. */
export function parseHolder(entry: string): Holder | undefined {
  const match = HOLDER.exec(entry);
  if (match !== null) {
    const [, functionName = '', filePath = '', line = '', held = ''] = match;
    return { site: { functionName, filePath, line: Number(line) }, heldMs: Number(held) };
  }
  const held = HELD_ONLY.exec(entry)?.[1];
  return held === undefined ? undefined : { site: undefined, heldMs: Number(held) };
}

export function stackFrames(stack: string): string[] {
  return stack
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '));
}

const FRAME_LOCATION = /\(?([^()\s][^()]*):\d+:\d+\)?$/;

/**
 * The first frame with a file of the application's (not Node's own, not a dependency's, not
 * `<anonymous>`), without the leading `at `: who did the checkin, or ran the statement.
 */
export function topApplicationFrame(stack: string): string | undefined {
  for (const frame of stackFrames(stack)) {
    const file = FRAME_LOCATION.exec(frame)?.[1];
    if (file === undefined || file.startsWith('node:') || /[\\/]node_modules[\\/]/.test(file)) continue;
    return frame.slice('at '.length);
  }
  return undefined;
}
