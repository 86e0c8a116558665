// In-memory resources for the generic-pool and tarn tests: small objects with an id, created and
// destroyed asynchronously (one event-loop turn each), as a driver's connect and close would be.
// Also helpers to observe unhandled rejections without the test runner's own handler, and the
// OpenTelemetry diag messages a run produced (the SDK reports a span ended twice through diag).
import { diag, DiagLogLevel } from '@opentelemetry/api';
import type * as GenericPoolModule from 'generic-pool';
import { createRequire } from 'node:module';

/** What the pools lend: a small object with an id, so transcripts can name resources. */
export interface Resource {
  readonly id: number;
}

/** A factory for both libraries: `create()` and `destroy()` resolve on the next timer tick. */
export interface ResourceFactory {
  create(): Promise<Resource>;
  destroy(resource: Resource): Promise<void>;
  readonly destroyed: Resource[];
}

/**
 * generic-pool pools of in-memory resources (`max: 2` unless the options say otherwise), each
 * remembered in `pools` so the suite can drain them after its tests.
 */
export function genericPoolsOf(genericPool: typeof GenericPoolModule): {
  readonly pools: GenericPoolModule.Pool<Resource>[];
  newPool(options?: GenericPoolModule.Options): GenericPoolModule.Pool<Resource>;
} {
  const pools: GenericPoolModule.Pool<Resource>[] = [];
  return {
    pools,
    newPool(options = {}) {
      const pool = genericPool.createPool(resourceFactory(), { max: 2, ...options });
      pools.push(pool);
      return pool;
    },
  };
}

export function resourceFactory(): ResourceFactory {
  let nextId = 1;
  const destroyed: Resource[] = [];
  return {
    destroyed,
    async create() {
      await tick();
      return { id: nextId++ };
    },
    async destroy(resource) {
      await tick();
      destroyed.push(resource);
    },
  };
}

export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Lets `hops` rounds of already queued promise reactions run, without letting timers or I/O in:
 * the end of one synchronous step of an application.
 */
export async function flushMicrotasks(hops = 50): Promise<void> {
  for (let hop = 0; hop < hops; hop++) await Promise.resolve();
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A settled outcome as the application would log it: the resource id, or the error's class and message. */
export type Outcome = { readonly value: unknown } | { readonly error: string };

export function outcomeOf(promise: PromiseLike<unknown>): Promise<Outcome> {
  return Promise.resolve(promise).then(
    (value) => ({ value: describeValue(value) }),
    (error: unknown) => ({ error: describeError(error) }),
  );
}

export function describeValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if ('id' in value) return `resource ${String(value.id)}`;
  return `a ${value.constructor?.name ?? 'object'}`;
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.constructor.name}(${error.name}): ${error.message}`;
  return `non-error: ${String(error)}`;
}

/**
 * Takes the test runner's `unhandledRejection` listeners off and reports every unhandled
 * rejection, and every later handling of one, to `onEvent` until the returned function is called,
 * which puts the runner's listeners back. Node reports a rejection as unhandled only once the
 * microtask queue is empty, so the callers wait a timer turn before stopping.
 */
export function watchRejections(onEvent: (event: string, reason: unknown) => void): () => void {
  const saved = process.listeners('unhandledRejection');
  const reasons = new Map<Promise<unknown>, unknown>();
  const onUnhandled = (reason: unknown, promise: Promise<unknown>) => {
    reasons.set(promise, reason);
    onEvent(`unhandled rejection: ${describeError(reason)}`, reason);
  };
  const onHandled = (promise: Promise<unknown>) => {
    const reason = reasons.get(promise);
    reasons.delete(promise);
    onEvent(`rejection handled later: ${describeError(reason)}`, reason);
  };
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', onUnhandled);
  process.on('rejectionHandled', onHandled);
  return () => {
    process.off('unhandledRejection', onUnhandled);
    process.off('rejectionHandled', onHandled);
    for (const listener of saved) process.on('unhandledRejection', listener);
  };
}

/** The reasons of rejections that `work` left unhandled (a later handling takes one back). */
export async function unhandledRejectionsDuring(work: () => Promise<void>): Promise<unknown[]> {
  const unhandled: unknown[] = [];
  const stop = watchRejections((event, reason) => {
    const index = unhandled.indexOf(reason);
    if (event.startsWith('unhandled')) unhandled.push(reason);
    else if (index >= 0) unhandled.splice(index, 1);
  });
  try {
    await work();
    for (let turn = 0; turn < 5; turn++) await delay(1);
  } finally {
    stop();
  }
  return unhandled;
}

const requireFromHere = createRequire(import.meta.url);

/** `require(name)`: call only after setupTracing(), so require-in-the-middle patches it. */
export function requireLibrary<T>(name: string): T {
  return requireFromHere(name) as T;
}

/**
 * Records every diag message of level warn and above while `work` runs: the SDK logs there when a
 * span is ended twice or changed after its end, and the instrumentation its internal errors.
 */
export async function diagMessagesDuring(work: () => Promise<void>): Promise<string[]> {
  const messages: string[] = [];
  const record = (message: string) => {
    messages.push(message);
  };
  diag.setLogger({ error: record, warn: record, info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);
  try {
    await work();
  } finally {
    diag.disable();
  }
  return messages;
}

/**
 * Waits until `count()` is 0, at most `limitMs`, and returns the last count. A run may end
 * while a pool still has an acquire waiting for its timeout (tarn keeps acquires made after
 * `destroy()` until they time out); its lease ends then, bounded by that timeout.
 */
export async function settledCount(count: () => number, limitMs: number): Promise<number> {
  const deadline = performance.now() + limitMs;
  while (count() !== 0 && performance.now() < deadline) await delay(5);
  return count();
}
