// postgres.js with and without the instrumentation, on the real PostgreSQL: random sequences of
// plain queries (some failing), reserve()/release() (some released twice), queries on reserved
// connections, transactions held open and finished or failed, and sql.end() write the same
// transcript (values, errors by class and message, order of settlement, unhandled rejections),
// and every checkout span of the instrumented run ends exactly once.
//
// One connection (`max: 1`): postgres.js then serves everything in the order of its own queue
// and the server answers a connection in order, the same in both runs; when a reply lands
// between two steps is up to the network, so replies are compared in their own order
// (separateReplies). The baseline is the very
// same module with the instrumentation disabled: disable() puts Query.prototype.handle back
// (asserted before each baseline run); the factories postgres.js imported stay wrapped and pass
// through (see adapters/postgres.ts).
import fc from 'fast-check';
import { createRequire } from 'node:module';
import type PostgresModule from 'postgres';
import { it } from 'vitest';
import { tick } from '../support/in-memory-resources';
import { postgresConfig } from '../support/pg';
import { separateReplies } from '../support/server-transcript';
import { setupTracing } from '../support/tracing';
import { assertSameWithAndWithoutInstrumentation, Transcript } from '../support/transcript';

const tracing = setupTracing();
const postgres = createRequire(import.meta.url)('postgres') as typeof PostgresModule;

const BURST_LIMIT_MS = 1000;

type Operation =
  | { readonly kind: 'query' | 'failing query' | 'reserve' | 'hold transaction' | 'failing transaction' }
  | { readonly kind: 'release' | 'release twice' | 'reserved query' | 'finish transaction'; readonly pick: number }
  | { readonly kind: 'wait' };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'query' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'failing query' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'reserve' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release twice' as const), pick: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reserved query' as const), pick: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'hold transaction' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('finish transaction' as const), pick: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'failing transaction' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'wait' as const }) },
);

type Sql = ReturnType<typeof postgres>;
type Reserved = Awaited<ReturnType<Sql['reserve']>>;

function connect(): Sql {
  const { host, port, user, password, database } = postgresConfig();
  return postgres({ host, port, user, password, database, max: 1, onnotice: () => {} });
}

/** Query.prototype, found once on a query that is never run. */
const queryPrototype = Object.getPrototypeOf(connect()`select 1`) as { handle: unknown };

async function run(operations: readonly Operation[]) {
  const transcript = new Transcript(BURST_LIMIT_MS);
  const sql = connect();
  const reserved: { id: number; sql: Reserved }[] = [];
  const transactions: (() => void)[] = [];
  let acquires = 0;
  let count = 0;
  let unsettled = 0;
  /** Follows `result` in the transcript and counts it until it settles. */
  const follow = <T>(label: string, result: PromiseLike<T>, onValue?: (value: T) => void) => {
    unsettled++;
    transcript.follow(label, result, (value) => {
      unsettled--;
      onValue?.(value);
    });
    result.then(undefined, () => unsettled--);
  };
  const rows = (label: string) => (value: unknown) => transcript.note(`${label} = ${JSON.stringify(value)}`);
  try {
    for (const op of operations) {
      const id = ++count;
      switch (op.kind) {
        case 'query':
          acquires++;
          follow(`query #${id}`, sql`select ${id}::int as n`, rows(`query #${id}`));
          break;
        case 'failing query':
          acquires++;
          follow(`failing query #${id}`, sql`select 1/0 as n`);
          break;
        case 'reserve':
          acquires++;
          follow(`reserve #${id}`, sql.reserve(), (value) => reserved.push({ id, sql: value }));
          break;
        case 'release':
        case 'release twice': {
          const [taken] = reserved.splice(op.pick % Math.max(reserved.length, 1), 1);
          if (taken === undefined) transcript.note(`${op.kind}: nothing reserved`);
          else {
            transcript.note(`release #${taken.id} returns ${String(taken.sql.release())}`);
            if (op.kind === 'release twice') transcript.note(`release #${taken.id} again returns ${String(taken.sql.release())}`);
          }
          break;
        }
        case 'reserved query': {
          const taken = reserved[op.pick % Math.max(reserved.length, 1)];
          if (taken === undefined) transcript.note('reserved query: nothing reserved');
          else follow(`reserved #${taken.id} query`, taken.sql`select ${id}::int as n`, rows(`reserved #${taken.id} query`));
          break;
        }
        case 'hold transaction':
          acquires++;
          follow(
            `transaction #${id}`,
            sql.begin(async (tx) => {
              const [row] = await tx`select ${id}::int as n`;
              await new Promise<void>((resolve) => transactions.push(resolve));
              return row;
            }),
            rows(`transaction #${id}`),
          );
          break;
        case 'finish transaction': {
          const [finish] = transactions.splice(op.pick % Math.max(transactions.length, 1), 1);
          if (finish === undefined) transcript.note('finish transaction: none open');
          else finish();
          break;
        }
        case 'failing transaction':
          acquires++;
          follow(`failing transaction #${id}`, sql.begin(() => Promise.reject(new RangeError('body failed'))));
          break;
        case 'wait':
          await tick();
          break;
      }
      await transcript.endStep();
    }
    // Let everything go, in a fixed order, until nothing is left waiting: postgres.js serves
    // queries still queued at end() on a new connection, a race in either run.
    for (let round = 0; round < 100 && (reserved.length > 0 || transactions.length > 0 || unsettled > 0); round++) {
      while (reserved.length > 0) reserved.shift()!.sql.release();
      while (transactions.length > 0) transactions.shift()!();
      await new Promise((resolve) => setTimeout(resolve, 20));
      await transcript.endStep();
    }
    transcript.endBurst();
    const ended = sql.end({ timeout: 1 });
    transcript.follow('end', ended);
    await transcript.settle(ended, 3000);
  } finally {
    await transcript.close();
  }
  separateReplies(transcript);
  return { transcript, acquires };
}

it('random sequences: the same transcript with and without the instrumentation', async () => {
  await assertSameWithAndWithoutInstrumentation({
    tracing,
    spanName: 'postgres checkout',
    patchedMethod: () => queryPrototype.handle,
    operation,
    run,
    runs: 12,
    maxOperations: 10,
  });
}, 180_000);
