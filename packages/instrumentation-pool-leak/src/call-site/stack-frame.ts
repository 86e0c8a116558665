// One V8 stack line taken apart, and what kind of code it belongs to. Pure functions: the stack
// capture (stack.ts) decides what to capture, this module only reads what was captured.
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One `    at ...` line, taken apart. `filePath` is undefined for frames without a file location. */
export interface ParsedFrame {
  readonly functionName: string | undefined;
  readonly filePath: string | undefined;
  readonly line: number;
  readonly column: number;
}

const FRAME_START = /^\s*at /;
const LOCATION = /^(.+):(\d+):(\d+)$/;

/**
 * Parses one V8 stack line; undefined for anything that is not a frame line. Handles
 * `at async fn (file:l:c)` and `at async file:l:c` (the `async` marks the frame, it is not part of
 * the name or the file), `at new Promise (<anonymous>)`, `at Array.map (native)` and
 * `at async Promise.all (index 0)` (no file), eval frames
 * (`at eval (eval at f (file:1:2), <anonymous>:1:1)`: code that lives in no file, so no file
 * location), `file://` URLs (turned into paths) and Windows paths (`C:\app\x.js:1:2`).
 */
export function parseFrame(line: string): ParsedFrame | undefined {
  const start = FRAME_START.exec(line);
  if (start === null) return undefined;
  let rest = line.slice(start[0].length).trimEnd();
  if (rest.startsWith('async ')) rest = rest.slice('async '.length);
  let functionName: string | undefined;
  let location = rest;
  const open = rest.endsWith(')') ? openingParenOfLast(rest) : -1;
  if (open > 0 && rest[open - 1] === ' ') {
    functionName = rest.slice(0, open - 1);
    location = rest.slice(open + 1, -1);
  }
  const place = location.startsWith('eval at ') ? null : LOCATION.exec(location);
  if (place === null) return { functionName, filePath: undefined, line: 0, column: 0 };
  const file = place[1] ?? '';
  return {
    functionName,
    filePath: file.startsWith('file://') ? safeFileUrlToPath(file) : file,
    line: Number(place[2]),
    column: Number(place[3]),
  };
}

/** Index of the `(` that matches the final `)`: eval locations nest parentheses. */
function openingParenOfLast(text: string): number {
  let depth = 0;
  for (let index = text.length - 1; index >= 0; index -= 1) {
    const char = text[index];
    if (char === ')') depth += 1;
    else if (char === '(') {
      depth -= 1;
      if (depth === 0) return index;
    }
  }
  return -1;
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

/**
 * A path or file URL of application code: not Node's own, not under a `node_modules` folder
 * (POSIX or Windows separators, whatever the platform: stack strings may come from either).
 */
export function isApplicationFile(file: string): boolean {
  if (file === '' || file.startsWith('node:') || file.startsWith('internal/')) return false;
  return !file.includes(`${sep}node_modules${sep}`) && !file.includes('/node_modules/') && !file.includes('\\node_modules\\');
}

/**
 * The name a function without one goes by, everywhere the call site is named: `code.function.name`
 * on checkout and leak spans, the call-site metrics, `pool.call_path` and the holders lists built
 * from it. V8 writes `<anonymous>` for such frames in stack text too, so the stack and the
 * attributes agree.
 */
export const ANONYMOUS_FUNCTION_NAME = '<anonymous>';

/** The function name of a frame, {@link ANONYMOUS_FUNCTION_NAME} when it has none (an anonymous arrow, a module's top level). */
export function functionNameOf(frame: ParsedFrame): string {
  return frame.functionName ?? ANONYMOUS_FUNCTION_NAME;
}

/** `name (path:line)` of one call-path entry; the path relative to `cwd` when inside it. */
export function callPathEntry(frame: ParsedFrame & { filePath: string }, cwd: string): string {
  const prefix = cwd.endsWith(sep) ? cwd : cwd + sep;
  const path = cwd !== '' && frame.filePath.startsWith(prefix) ? frame.filePath.slice(prefix.length) : frame.filePath;
  return `${functionNameOf(frame)} (${path}:${frame.line})`;
}
