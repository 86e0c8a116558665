// An unsampled checkout's frames are captured at the checkout and read later (#22): what they read
// to is exactly what an eager capture at the same place builds — the same cached object.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createStackCapture, DeferredStack, resolveStack, type CapturedStack, type HeldStack, type StackCapture } from '../../src/call-site/stack';

const capture = createStackCapture({ maxFrames: 20, ownDirs: ['/nonexistent'] });

function eagerAt(stacks: StackCapture): CapturedStack | undefined {
  return stacks.capture(eagerAt);
}

function deferredAt(stacks: StackCapture): HeldStack {
  return stacks.captureDeferred(deferredAt);
}

function takeDeferred(): HeldStack {
  return deferredAt(capture);
}

function takeEager(): CapturedStack | undefined {
  return eagerAt(capture);
}

/** The same frames as takeDeferred's, read eagerly: one caller that can take either way. */
function takeEither(deferred: boolean): HeldStack {
  return deferred ? capture.captureDeferred(takeEither) : capture.capture(takeEither);
}

describe('captureDeferred', () => {
  it('reads to the same captured stack as an eager capture of the same frames, only when resolved', () => {
    // Node's own formatting, as in production (vitest installs a source-map formatter).
    const savedPrepare = Error.prepareStackTrace;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    onTestFinished(() => {
      Error.prepareStackTrace = savedPrepare;
    });
    const held = (function takeLater() {
      return capture.captureDeferred(takeLater);
    })();
    expect(held).toBeInstanceOf(DeferredStack);
    const resolved = resolveStack(held);
    expect(resolved?.callSite?.functionName).toBe('<anonymous>');
    expect(resolveStack(held)).toBe(resolved);
    // Two checkouts from one place: one read, the second found in the cache the first filled.
    const [first, second] = [1, 2].map(() => takeDeferred());
    expect(first).toBeInstanceOf(DeferredStack);
    expect(first).not.toBe(second);
    const firstRead = resolveStack(first);
    expect(firstRead?.callSite?.functionName).toBe('takeDeferred');
    expect(resolveStack(second)).toBe(firstRead);
    // An eager capture of the same frames is the very object the deferred reading built.
    expect(takeEager()?.callSite?.functionName).toBe('takeEager');
  });

  it('an eager capture of the same frames is the object the deferred reading built', () => {
    const savedPrepare = Error.prepareStackTrace;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    onTestFinished(() => {
      Error.prepareStackTrace = savedPrepare;
    });
    const results: HeldStack[] = [];
    for (const deferred of [true, false]) results.push(takeEither(deferred));
    expect(results[0]).toBeInstanceOf(DeferredStack);
    expect(resolveStack(results[0])).toBe(results[1]);
  });

  it('with an application-installed Error.prepareStackTrace the frames are read at once (the text is formatted at the capture)', () => {
    const saved = Error.prepareStackTrace;
    Error.prepareStackTrace = (error, sites) => `${String(error)}\n${sites.map((site) => `    at ${site.toString()}`).join('\n')}`;
    try {
      const held = (function takeFormatted() {
        return capture.captureDeferred(takeFormatted);
      })();
      expect(held).not.toBeInstanceOf(DeferredStack);
      expect(resolveStack(held)?.callSite?.functionName).toBe('<anonymous>');
    } finally {
      Error.prepareStackTrace = saved;
    }
  });
});

/**
 * A dependency of the application: 12 frames of its own between the caller and `take`
 * (`callThrough`), one (`callOnce`, like pg-pool's `pool.query`), or the same 12 on a later turn,
 * from the library's own callback, with no application frame on the stack (`onItsOwn`, like a
 * session store's or a job queue's timer).
 */
function writeLibraryPath(): { callThrough<T>(take: () => T): T; callOnce<T>(take: () => T): T; onItsOwn<T>(take: () => T): Promise<T> } {
  const dir = join(mkdtempSync(join(tmpdir(), 'pool-leak-unread-')), 'node_modules', 'orm-path');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'index.js'),
    `'use strict';
function frame(depth, take) { return depth === 1 ? take() : frame(depth - 1, take); }
exports.callThrough = function callThrough(take) { return frame(11, take); };
exports.callOnce = function callOnce(take) { return take(); };
exports.onItsOwn = function onItsOwn(take) { return new Promise((resolve) => setImmediate(function tick() { resolve(frame(11, take)); })); };
`,
  );
  return createRequire(import.meta.url)(join(dir, 'index.js'));
}

describe('unread captures (frames captured, formatted only when resolved)', () => {
  const unread = createStackCapture({ maxFrames: 20, ownDirs: ['/nonexistent'] });
  const library = writeLibraryPath();
  function checkoutBoundary(): HeldStack {
    return unread.captureDeferred(checkoutBoundary);
  }
  function directCaller(): HeldStack {
    return checkoutBoundary();
  }
  function callerThroughLibrary(): HeldStack {
    return library.callThrough(checkoutBoundary);
  }
  function eagerThroughLibrary(): CapturedStack | undefined {
    return library.callThrough(function eagerBoundary() {
      return unread.capture(eagerBoundary);
    });
  }

  it('resolve to the object an eager read of the same frames builds, whatever formatter is installed by then', () => {
    const restore = withNativeFormatting();
    // The first is read at once (the boundary's window is learned), the others are left unread.
    const held = Array.from({ length: 6 }, () => directCaller());
    // An application installing its own formatter between the capture and the read changes nothing.
    Error.prepareStackTrace = () => 'formatted by the application';
    const resolved = held.map((stack) => resolveStack(stack));
    restore();
    const first = resolved[0];
    expect(first?.callSite?.functionName).toBe('directCaller');
    for (const stack of resolved.slice(1)) expect(stack).toBe(first);
  });

  it('a path through a library, first seen unsampled at a boundary that learned a direct window, never names a wrong frame, and the next capture is exact', () => {
    const restore = withNativeFormatting();
    try {
      // Learned from direct callers: 3 frames are enough there.
      for (let index = 0; index < 3; index++) resolveStack(directCaller());
      const narrow = resolveStack(callerThroughLibrary());
      // Whatever the narrow capture kept were frames of this checkout: the library's, no call site.
      expect(narrow?.callSite).toBeUndefined();
      expect(narrow?.text).toContain('orm-path');
      // Its read taught the boundary how many frames the path needs.
      const exact = resolveStack(callerThroughLibrary());
      expect(exact?.callSite?.functionName).toBe('callerThroughLibrary');
      expect(exact?.callPath?.startsWith('callerThroughLibrary (')).toBe(true);
      // The same frames, read eagerly elsewhere, name the same caller function at the same place.
      expect(eagerThroughLibrary()?.callSite?.functionName).toBe('eagerThroughLibrary');
    } finally {
      restore();
    }
  });

  it('a probe read at once now and then learns a path seen only unsampled, before any of its checkouts is resolved', () => {
    const restore = withNativeFormatting();
    try {
      function probedBoundary(): HeldStack {
        return unread.captureDeferred(probedBoundary);
      }
      const probedDirect = (): HeldStack => probedBoundary();
      const probedThroughLibrary = (): HeldStack => library.callThrough(probedBoundary);
      resolveStack(probedDirect());
      // Enough unsampled checkouts through the library for one probe; none of them is resolved.
      for (let index = 0; index < 40; index++) probedThroughLibrary();
      expect(resolveStack(probedThroughLibrary())?.callSite?.functionName).toBe('probedThroughLibrary');
    } finally {
      restore();
    }
  });
});

describe('how many frames unread captures take at a boundary (learned from the captures read at once)', () => {
  /** A fresh capture, a pool function it takes stacks at, and the library; Node's own formatting for the test. */
  function learningAtOnePoolFunction() {
    const learning = createStackCapture({ maxFrames: 50, ownDirs: ['/nonexistent'] });
    function poolFunction(): CapturedStack | undefined {
      return learning.capture(poolFunction);
    }
    onTestFinished(withNativeFormatting());
    return { learning, poolFunction, library: writeLibraryPath() };
  }

  it('a caller through one library frame teaches 6, a path through 12 teaches 16', () => {
    const { learning, poolFunction, library } = learningAtOnePoolFunction();
    const service = () => library.callOnce(poolFunction);
    const controller = () => service();
    expect(controller()?.callSite?.functionName).toBe('service');
    expect(learning.unreadFramesAt(poolFunction)).toBe(6);
    library.callThrough(poolFunction);
    expect(learning.unreadFramesAt(poolFunction)).toBe(16);
  });

  it("a caller with no application frame on its whole stack (a library's own timer) does not widen them", async () => {
    const { learning, poolFunction, library } = learningAtOnePoolFunction();
    const direct = () => poolFunction();
    expect(direct()?.callSite?.functionName).toBe('direct');
    expect(learning.unreadFramesAt(poolFunction)).toBe(3);
    const fromTimer = await library.onItsOwn(poolFunction);
    // Every frame the library's timer ran through, and no call site: there is none to find.
    expect(fromTimer?.callSite).toBeUndefined();
    expect(fromTimer?.text).toContain('orm-path');
    expect(learning.unreadFramesAt(poolFunction)).toBe(3);
  });
});

/** Node's own formatting, as in production (vitest installs a source-map formatter); returns the undo. */
function withNativeFormatting(): () => void {
  const saved = Error.prepareStackTrace;
  (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
  return () => {
    Error.prepareStackTrace = saved;
  };
}
