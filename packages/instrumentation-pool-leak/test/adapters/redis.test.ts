// node-redis 5 client pools (createClientPool) against a real redis-server (test/setup/redis.ts)
// and the real SDK.
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { isPatchedByPoolLeak } from '../../src/adapters/kit/patcher';
import { lineOf } from '../support/source-lines';
import { describeWithRedis, loadRedis, redisUrl, requireRedisConfig } from '../support/redis';
import { allAttributeText, eventNamed, expectCheckedIn } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing({ leakThresholdMs: 0 });
const redis = loadRedis();
const CHECKOUT = 'redis checkout';
const THIS_FILE = 'redis.test.ts';

type Pool = ReturnType<typeof redis.createClientPool>;
const pools: Pool[] = [];

async function newPool(options: { maximum?: number; acquireTimeout?: number } = {}): Promise<Pool> {
  const pool = redis.createClientPool({ url: redisUrl() }, { minimum: 1, maximum: 2, ...options });
  pools.push(pool);
  // A client the server closed reports it on the pool; the pool reconnects it.
  pool.on('error', () => {});
  await pool.connect();
  return pool;
}

/** The prototype that defines `execute` (the pool object is a proxy of a generated subclass). */
function poolPrototype(pool: object): { execute: unknown; destroy: unknown } {
  for (let proto: object | null = pool; proto !== null; proto = Object.getPrototypeOf(proto)) {
    if (Object.prototype.hasOwnProperty.call(proto, 'execute')) return proto as { execute: unknown; destroy: unknown };
  }
  throw new Error('no execute on the pool');
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((settle) => (resolve = settle));
  return { promise, resolve };
}

beforeEach(() => tracing.exporter.reset());
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => (pool.isOpen ? pool.close() : undefined)));
});
afterAll(() => tracing.instrumentation.disable());

describeWithRedis('checkout forms', () => {
  it('a command (pool.set / pool.get): one span per command, child of the caller, with the server', async () => {
    const pool = await newPool();
    tracing.exporter.reset();
    const value = await tracing.inRequest('GET /command', async () => {
      await pool.set('pool-leak:k', 'v');
      return pool.get('pool-leak:k');
    });
    expect(value).toBe('v');
    const spans = tracing.spansNamed(CHECKOUT);
    expect(spans).toHaveLength(2);
    const request = tracing.onlySpanNamed('GET /command');
    const { host, port } = requireRedisConfig();
    for (const span of spans) {
      expectCheckedIn(span);
      expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
      expect(span.attributes['pool.library']).toBe('redis');
      expect(span.attributes['db.system.name']).toBe('redis');
      expect(span.attributes['server.address']).toBe(host);
      expect(span.attributes['server.port']).toBe(port);
      expect(span.attributes['db.namespace']).toBe('0');
      expect(span.attributes['db.client.connection.pool.name']).toBe(`${host}:${port}/0`);
    }
    expect(tracing.openLeaseCount()).toBe(0);
  });

  it('execute(fn): the lease lasts until fn settles; fn runs in the caller context with its value and errors unchanged', async () => {
    const pool = await newPool();
    tracing.exporter.reset();
    const release = deferred();
    let seenSpan: string | undefined;
    const running = tracing.inRequest('GET /execute', () =>
      pool.execute(async (client) => {
        seenSpan = trace.getActiveSpan()?.spanContext().spanId;
        await client.set('pool-leak:e', '1');
        await release.promise;
        return 'done';
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(tracing.spansNamed(CHECKOUT)).toHaveLength(0);
    expect(tracing.openLeaseCount()).toBe(1);
    release.resolve();
    expect(await running).toBe('done');
    const span = tracing.onlySpanNamed(CHECKOUT);
    expectCheckedIn(span);
    expect(seenSpan).toBe(tracing.onlySpanNamed('GET /execute').spanContext().spanId);
    expect(span.attributes['pool.held_ms']).toBeGreaterThan(0);

    const failure = new Error('task failed');
    await expect(pool.execute(() => Promise.reject(failure))).rejects.toBe(failure);
    expect(await pool.execute(() => 42)).toBe(42);
    expect(tracing.spansNamed(CHECKOUT)).toHaveLength(3);
    expect(tracing.openLeaseCount()).toBe(0);
  });

  it('multi().exec(): one lease for the transaction', async () => {
    const pool = await newPool();
    tracing.exporter.reset();
    const replies = await pool.multi().set('pool-leak:m', 'x').get('pool-leak:m').exec();
    expect(replies).toEqual(['OK', 'x']);
    expectCheckedIn(tracing.onlySpanNamed(CHECKOUT));
  });
});

describeWithRedis('call site', () => {
  it('names the application line that sent the command, and the caller of execute', async () => {
    const pool = await newPool();
    tracing.exporter.reset();
    async function readSessionFromRedis() {
      return pool.get('pool-leak:session'); // line:redis-get
    }
    async function countVisits() {
      return pool.execute((client) => client.incr('pool-leak:visits')); // line:redis-execute
    }
    await readSessionFromRedis();
    await countVisits();
    const [get, execute] = tracing.spansNamed(CHECKOUT);
    expect(get!.attributes['code.function.name']).toBe('readSessionFromRedis');
    expect(String(get!.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
    expect(get!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'redis-get'));
    expect(execute!.attributes['code.function.name']).toBe('countVisits');
    expect(execute!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'redis-execute'));
    expect(String(get!.attributes['code.stacktrace'])).not.toMatch(/instrumentation-pool-leak[/\\]src/);
  });
});

describeWithRedis('wait queue', () => {
  it('a task queued behind a held client runs in its own request context and records the queue', async () => {
    const pool = await newPool({ maximum: 1 });
    tracing.exporter.reset();
    const release = deferred();
    const holding = pool.execute(() => release.promise);
    await new Promise((resolve) => setTimeout(resolve, 10));
    let seenSpan: string | undefined;
    const waiting = tracing.inRequest('GET /waiter', () =>
      pool.execute(async (client) => {
        seenSpan = trace.getActiveSpan()?.spanContext().spanId;
        return client.ping();
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    await tracing.tracer.startActiveSpan('releaser', async (span) => {
      release.resolve();
      await holding;
      span.end();
    });
    expect(await waiting).toBe('PONG');
    const request = tracing.onlySpanNamed('GET /waiter');
    expect(seenSpan).toBe(request.spanContext().spanId);
    const waited = tracing.spansNamed(CHECKOUT).find((span) => span.parentSpanContext?.spanId === request.spanContext().spanId)!;
    expect(waited.attributes['pool.pending_at_request']).toBe(0);
    expect(waited.attributes['pool.wait_ms']).toBeGreaterThan(10);
  });

  it('acquireTimeout: the same TimeoutError; the span fails and names the holder (pool.exhausted)', async () => {
    const pool = await newPool({ maximum: 1, acquireTimeout: 50 });
    tracing.exporter.reset();
    const release = deferred();
    async function holdTheOnlyClient() {
      return pool.execute(() => release.promise);
    }
    const holding = holdTheOnlyClient();
    const error = await pool.get('pool-leak:x').then(
      () => undefined,
      (failure: unknown) => failure as Error,
    );
    expect(error?.constructor.name).toBe('TimeoutError');
    expect(error?.message).toBe('Timeout waiting for a client');
    const failed = tracing.onlySpanNamed(CHECKOUT);
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    const exhausted = eventNamed(failed, 'pool.exhausted');
    expect(exhausted?.attributes?.['pool.holders.count']).toBe(1);
    const holders = exhausted?.attributes?.['pool.holders'] as string[];
    expect(holders[0]).toContain('holdTheOnlyClient');
    release.resolve();
    await holding;
    expect(tracing.openLeaseCount()).toBe(0);
  });
});

describeWithRedis('server and pool ends', () => {
  it('CLIENT KILL of the held client: the lease still ends when the task settles', async () => {
    const pool = await newPool();
    const admin = redis.createClient({ url: redisUrl() });
    await admin.connect();
    tracing.exporter.reset();
    try {
      const outcome = await pool.execute(async (client) => {
        const id = await client.clientId();
        await admin.sendCommand(['CLIENT', 'KILL', 'ID', String(id)]);
        return client.ping().then(
          (reply) => `reply ${reply}`,
          (error: unknown) => `error ${(error as Error).constructor.name}`,
        );
      });
      expect(outcome).toMatch(/^(reply PONG|error \w+)$/);
      expectCheckedIn(tracing.onlySpanNamed(CHECKOUT));
      expect(tracing.openLeaseCount()).toBe(0);
    } finally {
      await admin.close();
    }
  });

  it('destroy() with a task that never settles: the lease ends, as destroyed', async () => {
    const pool = await newPool();
    tracing.exporter.reset();
    void pool.execute(() => new Promise(() => {}));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(tracing.openLeaseCount()).toBe(1);
    pool.destroy();
    const span = tracing.onlySpanNamed(CHECKOUT);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
    expect(tracing.openLeaseCount()).toBe(0);
  });

  it('destroy() with commands still queued: node-redis never runs them, so their leases end there too', async () => {
    const pool = await newPool({ maximum: 1, acquireTimeout: 60_000 });
    tracing.exporter.reset();
    void pool.execute(() => new Promise(() => {}));
    const queued = pool.get('never-sent');
    let queuedSettled = false;
    queued.then(
      () => (queuedSettled = true),
      () => (queuedSettled = true),
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(tracing.openLeaseCount()).toBe(2);
    pool.destroy();
    expect(tracing.openLeaseCount()).toBe(0);
    const spans = tracing.spansNamed(CHECKOUT);
    expect(spans).toHaveLength(2);
    const waiting = spans.find((span) => span.attributes['pool.checkin.destroyed'] === undefined)!;
    expect(waiting.status).toEqual({ code: SpanStatusCode.ERROR, message: 'pool ended with the checkout still waiting' });
    // node-redis's own behaviour is unchanged: the queued command stays pending.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(queuedSettled).toBe(false);
  });
});

describeWithRedis('no secrets in telemetry', () => {
  it('the password in the connection URL never reaches an attribute', async () => {
    const pool = await newPool();
    await tracing.inRequest('GET /secret', () => pool.ping());
    const text = allAttributeText(tracing.exporter.getFinishedSpans());
    expect(text).toContain(String(requireRedisConfig().port));
    expect(text).not.toContain(requireRedisConfig().password);
    expect(text).not.toContain('redis://');
  });
});

describeWithRedis('disable and enable', () => {
  it('disable() restores the pool; enable() patches again', async () => {
    const pool = await newPool();
    const prototype = poolPrototype(pool);
    expect(isPatchedByPoolLeak(prototype.execute)).toBe(true);
    expect(isPatchedByPoolLeak(prototype.destroy)).toBe(true);
    tracing.instrumentation.disable();
    try {
      expect(isPatchedByPoolLeak(prototype.execute)).toBe(false);
      expect(isPatchedByPoolLeak(prototype.destroy)).toBe(false);
      tracing.exporter.reset();
      await pool.ping();
      expect(tracing.spansNamed(CHECKOUT)).toHaveLength(0);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(isPatchedByPoolLeak(prototype.execute)).toBe(true);
    await pool.ping();
    expect(tracing.spansNamed(CHECKOUT)).toHaveLength(1);
  });
});
