// node-redis client pools with and without the instrumentation, on the real redis-server: random
// sequences of commands, execute() tasks held and let go, failing and synchronous tasks,
// transactions, and waits past the acquire timeout write the same transcript (values, errors by
// class and message, order of settlement, unhandled rejections), and every checkout span of the
// instrumented run ends exactly once.
//
// One client at most (`maximum: 1`), so the order in which the server answers is the order of
// the pool's own task queue, the same in both runs; when a reply lands between two steps is up
// to the network, so replies are compared in their own order (separateReplies). The baseline is the very same module with the
// instrumentation disabled: disable() puts the pool's own execute back (asserted before each
// baseline run).
import fc from 'fast-check';
import { it } from 'vitest';
import { tick } from '../support/in-memory-resources';
import { describeWithRedis, loadRedis, redisUrl } from '../support/redis';
import { separateReplies } from '../support/server-transcript';
import { setupTracing } from '../support/tracing';
import { assertSameWithAndWithoutInstrumentation, Transcript } from '../support/transcript';

const tracing = setupTracing();
const redis = loadRedis();

const ACQUIRE_TIMEOUT_MS = 60;
const LONG_WAIT_MS = 100;
const BURST_LIMIT_MS = 30;
const KEY = 'pool-leak:equivalence';

type Operation =
  | { readonly kind: 'incr' | 'hold' | 'failing task' | 'sync task' | 'multi' }
  | { readonly kind: 'let go'; readonly pick: number }
  | { readonly kind: 'wait'; readonly long: boolean };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'incr' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'hold' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('let go' as const), pick: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'failing task' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'sync task' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'multi' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'wait' as const, long: false }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'wait' as const, long: true }) },
);

/** The prototype that defines `execute`, found once on a pool that never connects. */
const poolPrototype = (() => {
  for (let proto: object | null = redis.createClientPool({ url: redisUrl() }); proto !== null; proto = Object.getPrototypeOf(proto)) {
    if (Object.prototype.hasOwnProperty.call(proto, 'execute')) return proto as { execute: unknown };
  }
  throw new Error('no execute on the pool');
})();

async function run(operations: readonly Operation[]) {
  const transcript = new Transcript(BURST_LIMIT_MS);
  const pool = redis.createClientPool({ url: redisUrl() }, { minimum: 1, maximum: 1, acquireTimeout: ACQUIRE_TIMEOUT_MS });
  pool.on('error', (error: unknown) => transcript.note(`pool error ${String(error)}`));
  await pool.connect();
  await pool.del(KEY);
  let acquires = 1;
  const held: (() => void)[] = [];
  let holds = 0;
  try {
    for (const op of operations) {
      switch (op.kind) {
        case 'incr':
          acquires++;
          transcript.follow('incr', pool.incr(KEY), (value) => transcript.note(`incr = ${value}`));
          break;
        case 'hold': {
          acquires++;
          const id = ++holds;
          transcript.follow(
            `hold #${id}`,
            pool.execute((client) => new Promise<string>((resolve) => held.push(() => resolve(`${id} done on ${typeof client}`)))),
            (value) => transcript.note(`hold #${id} = ${value}`),
          );
          break;
        }
        case 'let go': {
          const release = held.splice(op.pick % Math.max(held.length, 1), 1)[0];
          if (release === undefined) transcript.note('let go: nothing held');
          else release();
          break;
        }
        case 'failing task':
          acquires++;
          transcript.follow('failing task', pool.execute(() => Promise.reject(new RangeError('task failed'))));
          break;
        case 'sync task':
          acquires++;
          transcript.follow('sync task', pool.execute(() => 'sync'), (value) => transcript.note(`sync task = ${value}`));
          break;
        case 'multi':
          acquires++;
          transcript.follow('multi', pool.multi().incr(KEY).get(KEY).exec(), (value) => transcript.note(`multi = ${JSON.stringify(value)}`));
          break;
        case 'wait':
          if (op.long) await transcript.longWait(LONG_WAIT_MS);
          else await tick();
          break;
      }
      await transcript.endStep();
    }
    transcript.endBurst();
    while (held.length > 0) held.shift()!();
    const closed = pool.close();
    transcript.follow('close', closed);
    await transcript.settle(closed);
    await transcript.longWait(1);
    transcript.note(`pool: idle ${pool.idleClients}, in use ${pool.clientsInUse}, queued ${pool.tasksQueueLength}`);
  } finally {
    await transcript.close();
    if (pool.isOpen) pool.destroy();
  }
  separateReplies(transcript);
  return { transcript, acquires };
}

describeWithRedis('node-redis pool equivalence', () => {
  it('random sequences: the same transcript with and without the instrumentation', async () => {
    await assertSameWithAndWithoutInstrumentation({
      tracing,
      spanName: 'redis checkout',
      patchedMethod: () => poolPrototype.execute,
      operation,
      run,
      runs: 15,
      maxOperations: 12,
    });
  }, 120_000);
});
