// An unsampled checkout's frames are captured at the checkout and read later (#22): what they read
// to is exactly what an eager capture at the same place builds — the same cached object.
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
