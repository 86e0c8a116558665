import { context, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import {
  classifyCheckin,
  installFinalizerMarker,
  stackShowsFinalizer,
  uninstallFinalizerMarker,
} from '../../src/core/checkin-context';

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const Native = globalThis.FinalizationRegistry;

const OWNER = '0af7651916cd43dd8448eb211c80319c';
const OTHER = '4bf92f3577b34da6a3ce929d0e0e4736';

function inTrace<T>(traceId: string, fn: () => T): T {
  const spanContext = { traceId, spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };
  return context.with(trace.setSpanContext(context.active(), spanContext), fn);
}

afterEach(() => {
  while (globalThis.FinalizationRegistry !== Native) uninstallFinalizerMarker();
});

describe('classifyCheckin', () => {
  it('same trace: nothing; no context or another trace: loop_tick; no owner: nothing', () => {
    expect(inTrace(OWNER, () => classifyCheckin(OWNER))).toBeUndefined();
    expect(classifyCheckin(OWNER)).toBe('loop_tick');
    expect(inTrace(OTHER, () => classifyCheckin(OWNER))).toBe('loop_tick');
    expect(classifyCheckin(undefined)).toBeUndefined();
    expect(inTrace(OTHER, () => classifyCheckin(undefined))).toBeUndefined();
  });
});

describe('finalizer marker', () => {
  it('replaces and restores the global FinalizationRegistry, reference-counted', () => {
    installFinalizerMarker();
    installFinalizerMarker();
    expect(globalThis.FinalizationRegistry).not.toBe(Native);
    expect(new FinalizationRegistry(() => {})).toBeInstanceOf(Native);
    expect(globalThis.FinalizationRegistry.name).toBe('FinalizationRegistry');
    uninstallFinalizerMarker();
    expect(globalThis.FinalizationRegistry).not.toBe(Native);
    uninstallFinalizerMarker();
    expect(globalThis.FinalizationRegistry).toBe(Native);
  });

  it('keeps the native TypeError for a non-function cleanup', () => {
    installFinalizerMarker();
    const marked = () => new FinalizationRegistry(42 as unknown as () => void);
    const native = () => new Native(42 as unknown as () => void);
    expect(marked).toThrow(TypeError);
    expect(() => marked()).toThrow(String(captureMessage(native)));
  });

  it('a cleanup callback of a marked registry is classified as finalizer, even inside the owner trace', async () => {
    installFinalizerMarker();
    const seen: (string | undefined)[] = [];
    const registry = new FinalizationRegistry<string>(() => seen.push(inTrace(OWNER, () => classifyCheckin(OWNER))));
    (() => registry.register({}, 'held'))();
    for (let attempt = 0; attempt < 50 && seen.length === 0; attempt++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(seen).toEqual(['finalizer']);
    expect(classifyCheckin(undefined)).toBeUndefined();
  });

  it('recognises the cleanupSome frame older Node versions show', () => {
    expect(stackShowsFinalizer('    at cleanup (/app/x.js:1:1)\n    at FinalizationRegistry.cleanupSome (<anonymous>)')).toBe(true);
    expect(stackShowsFinalizer('    at cleanup (/app/x.js:1:1)')).toBe(false);
  });
});

function captureMessage(fn: () => unknown): string {
  try {
    fn();
    return '';
  } catch (error) {
    return (error as Error).message;
  }
}
