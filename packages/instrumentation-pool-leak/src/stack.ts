import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_CODE_COLUMN_NUMBER,
  ATTR_CODE_FILE_PATH,
  ATTR_CODE_FUNCTION_NAME,
  ATTR_CODE_LINE_NUMBER,
  ATTR_CODE_STACKTRACE,
} from '@opentelemetry/semantic-conventions';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The first application frame of a stack: the line a person goes and fixes. */
export interface CallSite {
  readonly functionName: string | undefined;
  readonly filePath: string;
  readonly line: number;
  readonly column: number;
}

/** A captured, trimmed stack; shared between all checkouts from the same call site. */
export interface CapturedStack {
  /** `    at ...` lines, capped by frame count and by length. */
  readonly text: string;
  readonly callSite: CallSite | undefined;
  /** `code.stacktrace` and the `code.*` call-site attributes, built once. */
  readonly attributes: Attributes;
}

/** Captures the stack of whoever called `boundary`. */
export interface StackCapture {
  capture(boundary: Function): CapturedStack | undefined;
}

/** Used when stacks are off (`stackFrames: 0`): captures nothing, costs a call. */
export const NO_STACK_CAPTURE: StackCapture = { capture: () => undefined };

export interface StackCaptureOptions {
  /** Frames kept; at least 1. */
  readonly maxFrames: number;
  /**
   * Frames under these directories belong to the instrumentation and are removed: the compiled
   * code, and its sources, which is where frames point under `--enable-source-maps`.
   */
  readonly ownDirs: readonly string[];
  /**
   * Frames of the short key captured on every call (see below). Default 2: the call site and
   * its caller when the code that asked for the connection is application code.
   */
  readonly shortKeyFrames?: number;
  /** Frames of the long key, used when the short one holds no application frame. Default 8. */
  readonly keyFrames?: number;
  /** Upper bound of the stack text, cut at a line end. Default 8192 characters. */
  readonly maxChars?: number;
  /** Distinct call sites remembered. Default 512. */
  readonly cacheSize?: number;
}

const DEFAULT_SHORT_KEY_FRAMES = 2;
const DEFAULT_KEY_FRAMES = 8;
const DEFAULT_MAX_CHARS = 8192;
const DEFAULT_CACHE_SIZE = 512;

/**
 * Capturing and formatting a stack costs far more than the rest of a checkout, and both grow
 * with the number of frames (measured on Node 24 on the CI machine: ~3–5 µs for a 1-frame
 * capture, ~1–1.5 µs per further frame, and formatting the text roughly doubles it). So a
 * checkout captures only a few frames, unformatted — script and character position of each —
 * as the key of a bounded cache of fully formatted stacks:
 *
 * - the short key (`shortKeyFrames`, 2): enough when one of its frames is application code,
 *   which is the case whenever the application calls the pool directly or through one library
 *   function (`pool.query`, `pool.use`);
 * - otherwise the long key (`keyFrames`, 8), for call paths through deeper library code.
 *
 * A stack shallower than the key is complete as it is. Limit, documented in the README: two
 * checkouts whose key frames are identical share the deeper frames of the first one seen — the
 * call site itself (`code.*`) is always in the key.
 */
export function createStackCapture(options: StackCaptureOptions): StackCapture {
  const maxFrames = Math.max(1, options.maxFrames);
  const keyFrames = Math.max(1, Math.min(maxFrames, options.keyFrames ?? DEFAULT_KEY_FRAMES));
  const shortKeyFrames = Math.max(1, Math.min(keyFrames, options.shortKeyFrames ?? DEFAULT_SHORT_KEY_FRAMES));
  const maxChars = options.maxChars ?? DEFAULT_MAX_CHARS;
  const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
  const ownPrefixes = options.ownDirs.map((dir) => (dir.endsWith(sep) ? dir : dir + sep));
  const cache = new Map<string, CapturedStack>();
  const isApplicationScript = (script: string) =>
    isApplicationFile(script) && !ownPrefixes.some((prefix) => script.startsWith(prefix));
  /** The key of a complete capture, or of one that reached application code; else null. */
  const shortKey = (_error: Error, frames: NodeJS.CallSite[]): string | null => {
    const key = framePositions(_error, frames);
    if (frames.length < shortKeyFrames) return key;
    for (const frame of frames) if (isApplicationScript(frame.getScriptNameOrSourceURL() ?? '')) return key;
    return null;
  };

  return {
    capture(boundary) {
      let key = positionKey(boundary, shortKeyFrames, shortKey);
      if (key === null) key = positionKey(boundary, keyFrames, framePositions);
      if (typeof key !== 'string') return undefined;
      const cached = cache.get(key);
      if (cached !== undefined) return cached;
      const text = stackText(boundary, maxFrames);
      if (text === undefined) return undefined;
      const captured = buildCapturedStack(text, maxFrames, maxChars, ownPrefixes);
      if (cache.size >= cacheSize) {
        const oldest = cache.keys().next();
        if (oldest.done !== true) cache.delete(oldest.value);
      }
      cache.set(key, captured);
      return captured;
    },
  };
}

/** Script and position of each frame: identifies a call path without formatting any text. */
function framePositions(_error: Error, frames: NodeJS.CallSite[]): string {
  let key = '';
  for (const frame of frames) key += `${frame.getScriptNameOrSourceURL() ?? ''}:${frame.getPosition()};`;
  return key;
}

/**
 * What `prepare` makes of the top `limit` frames above `boundary`: a key, null when `prepare`
 * says the frames are not enough, undefined when no stack is available.
 */
function positionKey(
  boundary: Function,
  limit: number,
  prepare: (error: Error, frames: NodeJS.CallSite[]) => string | null,
): string | null | undefined {
  const holder: { stack?: unknown } = {};
  const savedLimit = Error.stackTraceLimit;
  const savedPrepare = Error.prepareStackTrace;
  Error.stackTraceLimit = limit;
  Error.prepareStackTrace = prepare;
  try {
    Error.captureStackTrace(holder, boundary);
    // Read while our prepareStackTrace is installed: formatting is lazy.
    const key = holder.stack;
    return typeof key === 'string' || key === null ? key : undefined;
  } finally {
    Error.prepareStackTrace = savedPrepare;
    Error.stackTraceLimit = savedLimit;
  }
}

/** The formatted stack above `boundary`, at most `limit` frames, or undefined if unavailable. */
function stackText(boundary: Function, limit: number): string | undefined {
  const holder: { stack?: unknown } = {};
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = limit;
  try {
    Error.captureStackTrace(holder, boundary);
  } finally {
    Error.stackTraceLimit = saved;
  }
  // Reading .stack formats it, through the application's Error.prepareStackTrace if it set one.
  const text = holder.stack;
  return typeof text === 'string' ? text : undefined;
}

/** Trims a formatted stack to frames that are not ours, caps it and finds the call site. */
export function buildCapturedStack(
  text: string,
  maxFrames: number,
  maxChars: number,
  ownPrefixes: readonly string[],
): CapturedStack {
  const kept: string[] = [];
  let length = 0;
  let callSite: CallSite | undefined;
  for (const line of text.split('\n')) {
    if (kept.length >= maxFrames) break;
    const frame = parseFrame(line);
    if (frame === undefined) continue;
    const file = frame.filePath;
    if (file !== undefined && ownPrefixes.some((prefix) => file.startsWith(prefix))) continue;
    const trimmed = line.trimEnd();
    if (length + trimmed.length + 1 > maxChars) break;
    kept.push(trimmed);
    length += trimmed.length + 1;
    if (callSite === undefined && isApplicationFrame(frame)) {
      callSite = {
        functionName: frame.functionName,
        filePath: frame.filePath,
        line: frame.line,
        column: frame.column,
      };
    }
  }
  const stack = kept.join('\n');
  const attributes: Attributes = { [ATTR_CODE_STACKTRACE]: stack };
  if (callSite !== undefined) {
    if (callSite.functionName !== undefined) attributes[ATTR_CODE_FUNCTION_NAME] = callSite.functionName;
    attributes[ATTR_CODE_FILE_PATH] = callSite.filePath;
    attributes[ATTR_CODE_LINE_NUMBER] = callSite.line;
    attributes[ATTR_CODE_COLUMN_NUMBER] = callSite.column;
  }
  return { text: stack, callSite, attributes };
}

/** One `    at ...` line, taken apart. `filePath` is undefined for frames without a location. */
export interface ParsedFrame {
  readonly functionName: string | undefined;
  readonly filePath: string | undefined;
  readonly line: number;
  readonly column: number;
}

const FRAME_LINE = /^\s*at (?:(.+?) \((.+)\)|(.+))$/;
const LOCATION = /^(.+):(\d+):(\d+)$/;

/** Parses one V8 stack line; undefined for anything that is not a frame line. */
export function parseFrame(line: string): ParsedFrame | undefined {
  const match = FRAME_LINE.exec(line);
  if (match === null) return undefined;
  const rawName = match[1];
  const location = match[2] ?? match[3] ?? '';
  const functionName = rawName === undefined ? undefined : rawName.replace(/^async /, '');
  const place = LOCATION.exec(location);
  if (place === null || location.startsWith('eval at ')) {
    return { functionName, filePath: undefined, line: 0, column: 0 };
  }
  const file = place[1] ?? '';
  return {
    functionName,
    filePath: file.startsWith('file://') ? safeFileUrlToPath(file) : file,
    line: Number(place[2]),
    column: Number(place[3]),
  };
}

function safeFileUrlToPath(url: string): string {
  try {
    return fileURLToPath(url);
  } catch {
    return url;
  }
}

/** Application code: not Node's own, not a dependency under node_modules. */
export function isApplicationFrame(frame: ParsedFrame): frame is ParsedFrame & { filePath: string } {
  return frame.filePath !== undefined && isApplicationFile(frame.filePath);
}

/** A path or file URL of application code: not Node's own, not under node_modules. */
function isApplicationFile(file: string): boolean {
  if (file === '' || file.startsWith('node:') || file.startsWith('internal/')) return false;
  return !file.includes(`${sep}node_modules${sep}`) && !file.includes('/node_modules/');
}
