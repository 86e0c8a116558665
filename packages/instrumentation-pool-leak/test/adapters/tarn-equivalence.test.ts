// tarn with and without the instrumentation: random sequences of acquire (with `.promise` read at
// once, or only once the sequence is over), release, stale releases, abort(), waits
// past the acquire timeout and pool destroy() write the same transcript (resource ids, release
// booleans, errors by class and message, order of settlement, and which rejections went
// unhandled), and every checkout span of the instrumented run ends exactly once.
//
// The baseline is the very same module with the instrumentation disabled: disable() puts tarn's
// own acquire/release back on Pool.prototype (asserted with isWrapped before each baseline run),
// and every run builds a fresh pool, so nothing of the instrumentation reaches the baseline.
//
// With the instrumentation every `.promise` settles one microtask after tarn's own (the adapter
// chains it, see adapters/tarn.ts); all of them alike, so their order is unchanged. Transcripts
// compare order step by step, and each step ends by running the queued promise reactions.
import fc from 'fast-check';
import type * as TarnModule from 'tarn';
import { it } from 'vitest';
import { requireLibrary, resourceFactory, tick, type Resource } from '../support/in-memory-resources';
import { setupTracing } from '../support/tracing';
import { assertSameWithAndWithoutInstrumentation, Transcript } from '../support/transcript';

const tracing = setupTracing();
const tarn = requireLibrary<typeof TarnModule>('tarn');

const ACQUIRE_TIMEOUT_MS = 40;
const LONG_WAIT_MS = 70;
/** A burst of instantaneous steps longer than this may have let a timeout fire: run discarded. */
const BURST_LIMIT_MS = 20;
const CLEANUP_ROUNDS = 50;

type Operation =
  | { readonly kind: 'acquire'; readonly readAtOnce: boolean }
  | { readonly kind: 'release' | 'release again' | 'abort'; readonly pick: number }
  | { readonly kind: 'wait'; readonly long: boolean }
  | { readonly kind: 'destroy pool' };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('acquire' as const), readAtOnce: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release again' as const), pick: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat(9) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'wait' as const, long: false }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'wait' as const, long: true }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'destroy pool' as const }) },
);

type PendingOperation = ReturnType<TarnModule.Pool<Resource>['acquire']>;

interface Run {
  readonly transcript: Transcript;
  readonly acquires: number;
}

/** The application: runs `operations` on a fresh pool, then gives everything back and destroys it. */
async function run(operations: readonly Operation[]): Promise<Run> {
  const transcript = new Transcript(BURST_LIMIT_MS);
  const factory = resourceFactory();
  const pool = new tarn.Pool<Resource>({
    create: () => factory.create(),
    destroy: (resource) => factory.destroy(resource),
    min: 0,
    max: 2,
    acquireTimeoutMillis: ACQUIRE_TIMEOUT_MS,
  });
  const acquired: PendingOperation[] = [];
  const unread = new Map<number, PendingOperation>();
  const held: Resource[] = [];
  const givenBack: Resource[] = [];

  const read = (label: string, pending: PendingOperation) =>
    transcript.follow(label, pending.promise, (resource) => {
      held.push(resource);
    });
  const release = (resource: Resource, label = `release resource ${resource.id}`) =>
    transcript.note(`${label} -> ${String(pool.release(resource))}`);

  try {
    for (const op of operations) {
      switch (op.kind) {
        case 'acquire': {
          const pending = pool.acquire();
          acquired.push(pending);
          const label = `acquire #${acquired.length}`;
          transcript.note(`${label} returns ${pending.constructor.name}`);
          if (op.readAtOnce) read(label, pending);
          else unread.set(acquired.length, pending);
          break;
        }
        case 'release': {
          const [resource] = held.splice(op.pick % Math.max(held.length, 1), 1);
          if (resource === undefined) transcript.note('release: nothing held');
          else {
            givenBack.push(resource);
            release(resource);
          }
          break;
        }
        case 'release again': {
          const stale = givenBack[op.pick % Math.max(givenBack.length, 1)];
          if (stale === undefined) transcript.note('release again: nothing given back yet');
          else release(stale, `release resource ${stale.id} again`);
          break;
        }
        case 'abort': {
          const index = op.pick % Math.max(acquired.length, 1);
          const pending = acquired[index];
          if (pending === undefined) transcript.note('abort: nothing acquired yet');
          else {
            pending.abort();
            transcript.note(`abort acquire #${index + 1}`);
          }
          break;
        }
        case 'wait':
          if (op.long) await transcript.longWait(LONG_WAIT_MS);
          else await tick();
          break;
        case 'destroy pool':
          transcript.follow('destroy pool', pool.destroy());
          break;
      }
      await transcript.endStep();
    }

    // Read what was left unread (a rejection Node already reported is then "handled later"),
    // give everything back; waiters get served by the releases and are given back next round.
    for (const [number, pending] of unread) read(`late read of acquire #${number}`, pending);
    for (let round = 0; round < CLEANUP_ROUNDS; round++) {
      while (held.length > 0) release(held.shift()!);
      await transcript.endStep();
      if (pool.numUsed() === 0 && pool.numPendingAcquires() === 0) break;
      await tick();
    }
    transcript.endBurst();
    const destroyed = pool.destroy();
    transcript.follow('final pool destroy', destroyed);
    await transcript.settle(destroyed);
    await transcript.longWait(1);
    transcript.note(`pool: used ${pool.numUsed()}, free ${pool.numFree()}, pending ${pool.numPendingAcquires()}`);
    transcript.note(`destroyed: ${factory.destroyed.map((resource) => resource.id).join(', ')}`);
  } finally {
    await transcript.close();
  }
  return { transcript, acquires: acquired.length };
}

it('random operation sequences: the same transcript with and without the instrumentation, every span ended once', () =>
  assertSameWithAndWithoutInstrumentation({
    tracing,
    spanName: 'tarn checkout',
    patchedMethod: () => tarn.Pool.prototype.acquire,
    operation,
    run,
    runs: 25,
    maxOperations: 10,
  }));
