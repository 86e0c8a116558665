// sequelize-pool (8.x, Sequelize 7's, and 7.1, Sequelize 6's own copy) with and without the
// instrumentation: random sequences of acquire, release, destroy, stale releases and destroys,
// waits past the acquire timeout, then drain + destroyAllNow write the same transcript (resource
// ids, errors by class and message, order of settlement, unhandled rejections), and every
// checkout span of the instrumented run ends exactly once.
//
// The baseline is the very same module with the instrumentation disabled (disable() puts the
// library's own methods back, asserted before each baseline run); every run builds a fresh pool.
//
// Known, accepted difference: the acquire promise the application gets is chained on the pool's
// (the pool itself attaches no handler, so a branch beside it would hide an unhandled
// rejection); it settles one microtask later, which the step-by-step transcript does not see.
// A drain in mid-run is left out: it polls on 100 ms timers, so when it settles is a race.
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { describe, it } from 'vitest';
import { requireLibrary, resourceFactory, tick, type Resource } from '../support/in-memory-resources';
import { setupTracing } from '../support/tracing';
import { assertSameWithAndWithoutInstrumentation, Transcript } from '../support/transcript';

const tracing = setupTracing();

interface SequelizePool {
  acquire(): Promise<Resource>;
  release(resource: Resource): void;
  destroy(resource: Resource): Promise<void>;
  drain(): Promise<void>;
  destroyAllNow(): Promise<void>;
  readonly size: number;
  readonly available: number;
  readonly using: number;
  readonly waiting: number;
}
interface SequelizePoolModule {
  Pool: (new (factory: Record<string, unknown>) => SequelizePool) & { prototype: SequelizePool };
}

/** The two copies installed: 8.x at the top, 7.1 under sequelize (6). */
const COPIES: Record<string, SequelizePoolModule> = {
  'sequelize-pool 8 (Sequelize 7)': requireLibrary<SequelizePoolModule>('sequelize-pool'),
  'sequelize-pool 7.1 (Sequelize 6)': createRequire(createRequire(import.meta.url).resolve('sequelize'))('sequelize-pool') as SequelizePoolModule,
};

const ACQUIRE_TIMEOUT_MS = 40;
const LONG_WAIT_MS = 70;
const BURST_LIMIT_MS = 20;
const CLEANUP_ROUNDS = 50;

type Operation =
  | { readonly kind: 'acquire' }
  | { readonly kind: 'release' | 'destroy' | 'release again' | 'destroy again'; readonly pick: number }
  | { readonly kind: 'wait'; readonly long: boolean };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'acquire' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), pick: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release again' as const), pick: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy again' as const), pick: fc.nat(9) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'wait' as const, long: false }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'wait' as const, long: true }) },
);

/** The application: runs `operations` on a fresh pool, then gives everything back and drains. */
function runOn(library: SequelizePoolModule) {
  return async (operations: readonly Operation[]) => {
    const transcript = new Transcript(BURST_LIMIT_MS);
    const factory = resourceFactory();
    const pool = new library.Pool({
      name: 'equivalence',
      create: () => factory.create(),
      destroy: (resource: Resource) => factory.destroy(resource),
      validate: () => true,
      max: 2,
      min: 0,
      acquireTimeoutMillis: ACQUIRE_TIMEOUT_MS,
    });
    const held: Resource[] = [];
    const givenBack: Resource[] = [];
    let acquires = 0;

    const giveBack = (kind: 'release' | 'destroy', resource: Resource) => {
      if (kind === 'destroy') transcript.follow(`destroy resource ${resource.id}`, pool.destroy(resource));
      else transcript.note(`release resource ${resource.id}: ${String(pool.release(resource))}`);
    };

    try {
      for (const op of operations) {
        switch (op.kind) {
          case 'acquire':
            acquires++;
            transcript.follow(`acquire #${acquires}`, pool.acquire(), (resource) => {
              held.push(resource);
            });
            break;
          case 'release':
          case 'destroy':
            if (held.length === 0) transcript.note(`${op.kind}: nothing held`);
            else {
              const [resource] = held.splice(op.pick % held.length, 1);
              givenBack.push(resource!);
              giveBack(op.kind, resource!);
            }
            break;
          case 'release again':
          case 'destroy again': {
            const stale = givenBack[op.pick % Math.max(givenBack.length, 1)];
            if (stale === undefined) transcript.note(`${op.kind}: nothing given back yet`);
            else giveBack(op.kind === 'release again' ? 'release' : 'destroy', stale);
            break;
          }
          case 'wait':
            if (op.long) await transcript.longWait(LONG_WAIT_MS);
            else await tick();
            break;
        }
        await transcript.endStep();
      }
      for (let round = 0; round < CLEANUP_ROUNDS; round++) {
        while (held.length > 0) giveBack('release', held.shift()!);
        await transcript.endStep();
        if (held.length === 0 && pool.waiting === 0 && pool.using === 0) break;
        await tick();
      }
      transcript.endBurst();
      const drained = pool.drain().then(() => pool.destroyAllNow());
      transcript.follow('final drain and destroy all', drained);
      await transcript.settle(drained);
      await transcript.longWait(1);
      transcript.note(`pool: size ${pool.size}, available ${pool.available}, using ${pool.using}, waiting ${pool.waiting}`);
      transcript.note(`destroyed: ${factory.destroyed.map((resource) => resource.id).join(', ')}`);
    } finally {
      await transcript.close();
    }
    return { transcript, acquires };
  };
}

for (const [name, library] of Object.entries(COPIES)) {
  describe(name, () => {
    it('random operation sequences: the same transcript with and without the instrumentation, every span ended once', () =>
      assertSameWithAndWithoutInstrumentation({
        tracing,
        spanName: 'sequelize-pool checkout',
        patchedMethod: () => library.Pool.prototype.acquire,
        operation,
        run: runOn(library),
        runs: 20,
        maxOperations: 10,
      }));
  });
}
