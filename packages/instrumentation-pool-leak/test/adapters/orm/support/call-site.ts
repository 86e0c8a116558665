// Assertions on where a checkout span says it came from, for the ORM tests: `code.*` (the first
// application frame), `pool.call_path` (up to 3 application frames, innermost first) and
// `code.stacktrace`. Expected lines come from `// line:<name>` marker comments in the test file,
// so edits never leave a stale number behind.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { basename, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { lineOf } from '../../../support/source-lines';
import { childOf } from '../../../support/spans';

/** An application frame the test expects: a function of the test file at a marked line. */
export interface ExpectedFrame {
  readonly functionName: string;
  /** Name of the `// line:<name>` marker on the line of the call. */
  readonly marker: string;
}

/** The separator of `pool.call_path` entries (DESIGN.md). */
const CALL_PATH_SEPARATOR = ' ← ';
const MAX_CALL_PATH_FRAMES = 3;

export interface CallSiteAssertions {
  /** `code.function.name`, `code.file.path` and `code.line.number` name `frame` of the test file. */
  expectCallSite(span: ReadableSpan, frame: ExpectedFrame): void;
  /**
   * `pool.call_path` starts with these frames of the test file, innermost first; with 3 frames
   * (the most it holds) that is the whole path. Shorter lists leave the outer entries, frames of
   * the test runner or of the support files, unchecked.
   */
  expectCallPath(span: ReadableSpan, frames: readonly ExpectedFrame[]): void;
  /**
   * Frames of `code.stacktrace` above the first frame of the test file: the library (and Node)
   * frames between the pool's acquire and the application. -1 when the test file is not in it.
   */
  libraryFramesAbove(span: ReadableSpan): number;
}

/** Assertions bound to one test file, given as its `import.meta.url`. */
export function callSiteAssertions(fileUrl: string): CallSiteAssertions {
  const absolutePath = fileURLToPath(fileUrl);
  // pool.call_path shows paths relative to the working directory when inside it.
  const shownPath = absolutePath.startsWith(process.cwd() + sep) ? relative(process.cwd(), absolutePath) : absolutePath;
  const fileName = basename(absolutePath);
  const entry = (frame: ExpectedFrame) => `${frame.functionName} (${shownPath}:${lineOf(fileUrl, frame.marker)})`;
  return {
    expectCallSite(span, frame) {
      expect(span.attributes['code.function.name']).toBe(frame.functionName);
      expect(String(span.attributes['code.file.path'])).toMatch(new RegExp(`[/\\\\]${escapeRegExp(fileName)}$`));
      expect(span.attributes['code.line.number']).toBe(lineOf(fileUrl, frame.marker));
    },
    expectCallPath(span, frames) {
      const callPath = span.attributes['pool.call_path'];
      expect(callPath).toBeTypeOf('string');
      const entries = String(callPath).split(CALL_PATH_SEPARATOR);
      expect(entries.length).toBeLessThanOrEqual(MAX_CALL_PATH_FRAMES);
      expect(entries.slice(0, frames.length)).toEqual(frames.map(entry));
    },
    libraryFramesAbove(span) {
      const frames = String(span.attributes['code.stacktrace'] ?? '').split('\n');
      return frames.findIndex((frame) => frame.includes(absolutePath));
    },
  };
}

/** The only span named `name` whose parent is the only span named `parentName`. */
export function onlyChildNamed(spans: readonly ReadableSpan[], name: string, parentName: string): ReadableSpan {
  const parents = spans.filter((span) => span.name === parentName);
  expect(parents.map((span) => span.name)).toEqual([parentName]);
  const children = childOf(spans, parents[0]!).filter((span) => span.name === name);
  expect(children.map((span) => span.name)).toEqual([name]);
  return children[0]!;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
