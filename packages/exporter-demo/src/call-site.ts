// Call sites as the report shows them: read from a span's `pool.call_path` (or its code.* when
// it has none), from a stack, or from a `pool.holders` entry, and compared by one key. The key
// is the call path, so two callers of one helper are two rows even though their code.* (the
// helper's line) are the same.
import { ATTR_POOL_CALL_PATH } from 'opentelemetry-instrumentation-pool-leak';
import { CALL_PATH_SEPARATOR, type Caller } from './call-path';
import type { ReportSpan } from './report-span';

/** Where a connection was checked out. */
export interface CallSite {
  /** `code.function.name`: the first application frame, which may be a helper of the app. */
  readonly functionName: string;
  readonly filePath: string | undefined;
  readonly line: number | undefined;
  /**
   * `pool.call_path`: up to 3 application frames, innermost first, joined by ` ← `. Undefined
   * when the span has none (stack capture off, or an instrumentation from before the attribute).
   */
  readonly callPath: string | undefined;
}

export function callSiteOf(span: ReportSpan): CallSite {
  const { attributes } = span;
  const functionName = attributes['code.function.name'];
  const filePath = attributes['code.file.path'];
  const line = attributes['code.line.number'];
  const callPath = attributes[ATTR_POOL_CALL_PATH];
  return {
    functionName: typeof functionName === 'string' ? functionName : '<anonymous>',
    filePath: typeof filePath === 'string' ? filePath : undefined,
    line: typeof line === 'number' ? line : undefined,
    callPath: typeof callPath === 'string' && callPath !== '' ? callPath : undefined,
  };
}

/**
 * The key of every per-call-site table: the call path, or, for a span without one, the code.*
 * site written the way a one-frame call path (and an older `pool.holders` entry) writes it, so
 * a holder entry and the span of the same lease meet under one key either way.
 */
export function siteKey(site: CallSite): string {
  return site.callPath ?? `${site.functionName} (${site.filePath ?? ''}:${site.line ?? ''})`;
}

/** The frame a call site is named by in the report (see call-path.ts). */
export type NameCaller = (site: CallSite) => Caller;

/** The frames of the site's call path, innermost first; the code.* frame alone without one. */
export function callPathFramesOf(site: CallSite): string[] {
  return siteKey(site).split(CALL_PATH_SEPARATOR);
}

/** One entry of a `pool.exhausted` event's `pool.holders`. */
export interface Holder {
  /** Undefined when the entry names no call site (stack capture was off). */
  readonly site: CallSite | undefined;
  readonly heldMs: number;
}

/**
 * `"<call path> held <N> ms"`, optionally followed by ` — <lease state>`. The call path is
 * `fn (file:line)` frames joined by ` ← ` (one frame in entries of instrumentations from before
 * `pool.call_path`); the first ` (` of a frame ends its function, the file may hold more.
 */
const HOLDER = /^(.+) held (\d+(?:\.\d+)?) ms(?: — .*)?$/;
const FIRST_FRAME = /^(.*?) \((.+):(\d+)\)$/;

/** Parses a `pool.holders` entry; undefined if it does not have the documented shape. */
export function parseHolder(entry: string): Holder | undefined {
  const match = HOLDER.exec(entry);
  if (match === null) return undefined;
  const [, callPath = '', held = ''] = match;
  const heldMs = Number(held);
  const first = FIRST_FRAME.exec(callPath.split(CALL_PATH_SEPARATOR)[0] ?? '');
  if (first === null) return { site: undefined, heldMs };
  const [, functionName = '', filePath = '', line = ''] = first;
  return { site: { functionName, filePath, line: Number(line), callPath }, heldMs };
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
