// Our patcher next to the shimmer wrapping every contrib instrumentation uses
// (`InstrumentationBase._wrap` / `_unwrap`, the real ones): neither removes the other, in either
// order, and a contrib instrumentation that patches one method twice ("isWrapped → _unwrap →
// _wrap", as instrumentation-pg does for pg's Client.query) stays single.
import { InstrumentationBase, isWrapped, type InstrumentationModuleDefinition } from '@opentelemetry/instrumentation';
import { describe, expect, it } from 'vitest';
import type { Patcher } from '../../../src/adapters/kit/adapter';
import { createPatcher, isPatchedByPoolLeak } from '../../../src/adapters/kit/patcher';

type Method = (this: unknown, value: string) => string;
interface Target {
  method: Method;
}

/** A contrib-style instrumentation: wraps through the real InstrumentationBase helpers. */
class ShimmerInstrumentation extends InstrumentationBase {
  constructor() {
    super('shimmer-test', '1.0.0', { enabled: false });
  }
  protected override init(): InstrumentationModuleDefinition[] {
    return [];
  }
  /** As contrib instrumentations re-patch: take off what looks wrapped, then wrap. */
  patch(target: Target, calls: string[]): void {
    if (isWrapped(target.method)) this._unwrap(target, 'method');
    this._wrap(target, 'method', (original) =>
      function theirs(this: unknown, value: string) {
        calls.push('theirs');
        return original.call(this, value);
      },
    );
  }
  unpatch(target: Target): void {
    if (isWrapped(target.method)) this._unwrap(target, 'method');
  }
}

function newTarget(calls: string[]): Target {
  return {
    method(value) {
      calls.push('original');
      return `${value}!`;
    },
  };
}

function patchOurs(patcher: Patcher, target: Target, calls: string[]): void {
  patcher.wrap(target, 'method', (original) =>
    function ours(this: unknown, value: string) {
      calls.push('ours');
      return original.call(this, value);
    },
  );
}

function callOnce(target: Target, calls: string[]): string[] {
  calls.length = 0;
  expect(target.method('x')).toBe('x!');
  return [...calls];
}

describe('patcher next to shimmer-based instrumentations', () => {
  it('ours first, theirs patching twice: one wrapper each; either unwrap removes only its own', () => {
    const calls: string[] = [];
    const target = newTarget(calls);
    const original = target.method;
    const patcher = createPatcher(() => undefined);
    const theirs = new ShimmerInstrumentation();
    patchOurs(patcher, target, calls);
    theirs.patch(target, calls);
    theirs.patch(target, calls);
    expect(callOnce(target, calls)).toEqual(['theirs', 'ours', 'original']);

    theirs.unpatch(target);
    theirs.unpatch(target);
    expect(callOnce(target, calls)).toEqual(['ours', 'original']);
    patcher.unwrap(target, 'method');
    expect(target.method).toBe(original);
  });

  it('theirs first: ours wraps on top; their unwrap takes only theirs out from beneath ours', () => {
    const calls: string[] = [];
    const target = newTarget(calls);
    const original = target.method;
    const patcher = createPatcher(() => undefined);
    const theirs = new ShimmerInstrumentation();
    theirs.patch(target, calls);
    patchOurs(patcher, target, calls);
    expect(callOnce(target, calls)).toEqual(['ours', 'theirs', 'original']);

    theirs.unpatch(target);
    expect(isPatchedByPoolLeak(target.method)).toBe(true);
    expect(callOnce(target, calls)).toEqual(['ours', 'original']);
    theirs.patch(target, calls);
    expect(callOnce(target, calls)).toEqual(['theirs', 'ours', 'original']);
    theirs.unpatch(target);
    patcher.unwrap(target, 'method');
    expect(target.method).toBe(original);
  });

  it('ours unwrapped beneath theirs stays in their chain, and re-wrapping does not stack a second one', () => {
    const calls: string[] = [];
    const target = newTarget(calls);
    const patcher = createPatcher(() => undefined);
    const theirs = new ShimmerInstrumentation();
    patchOurs(patcher, target, calls);
    theirs.patch(target, calls);
    patcher.unwrap(target, 'method');
    expect(patcher.isPatched(target, 'method')).toBe(true);
    expect(callOnce(target, calls)).toEqual(['theirs', 'ours', 'original']);
    patchOurs(patcher, target, calls);
    expect(callOnce(target, calls)).toEqual(['theirs', 'ours', 'original']);
  });

  it('keeps `this`, arguments and constructor calls', () => {
    class Base {
      constructor(readonly value: number) {}
    }
    const holder: { Make: typeof Base; read(this: { n: number }, add: number): number } = {
      Make: Base,
      read(add) {
        return this.n + add;
      },
    };
    const patcher = createPatcher(() => undefined);
    patcher.wrap(holder, 'Make', (original) => original);
    patcher.wrap(holder, 'read', (original) =>
      function read(this: { n: number }, add: number) {
        return original.call(this, add);
      },
    );
    expect(holder.read.call({ n: 2 }, 3)).toBe(5);
    const made = new holder.Make(7);
    expect(made).toBeInstanceOf(Base);
    expect(made.value).toBe(7);
  });

  it('reports a wrapper that throws and leaves the method as it was', () => {
    const calls: string[] = [];
    const target = newTarget(calls);
    const original = target.method;
    const errors: string[] = [];
    const patcher = createPatcher((where) => errors.push(where));
    patcher.wrap(target, 'method', () => {
      throw new Error('broken wrapper');
    });
    expect(target.method).toBe(original);
    expect(errors).toEqual(['wrap method']);
  });
});
