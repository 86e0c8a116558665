// postgres.js (`postgres` 3.x) against a real PostgreSQL (test/setup/postgres.ts) and the real SDK.
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { createRequire } from 'node:module';
import type PostgresModule from 'postgres';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPatchedByPoolLeak } from '../../src/adapters/kit/patcher';
import { postgresEnv, runNode } from '../../../../test/support/node-process';
import { postgresConfig } from '../support/pg';
import { lineOf } from '../support/source-lines';
import { allAttributeText, eventNamed, expectCheckedIn } from '../support/spans';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const requireFromHere = createRequire(import.meta.url);
const postgres = requireFromHere('postgres') as typeof PostgresModule;
const CHECKOUT = 'postgres checkout';
const THIS_FILE = 'postgres.test.ts';

type Sql = ReturnType<typeof postgres>;
const instances: Sql[] = [];

/** The password travels in the URL, as many applications give it to postgres.js. */
function connectionUrl(): string {
  const { host, port, user, password, database } = postgresConfig();
  return `postgres://${user}:${encodeURIComponent(password)}@${host}:${port}/${database}`;
}

function newSql(options: { max?: number } = {}): Sql {
  const sql = postgres(connectionUrl(), { max: 2, onnotice: () => {}, ...options });
  instances.push(sql);
  return sql;
}

/** A connection up and idle, so the next checkout does not include opening one. */
async function warm(sql: Sql): Promise<void> {
  await sql`select 1`;
  tracing.exporter.reset();
}

beforeEach(() => tracing.exporter.reset());
afterEach(async () => {
  await Promise.all(instances.splice(0).map((sql) => sql.end({ timeout: 1 })));
});
afterAll(() => tracing.instrumentation.disable());

describe('checkout forms', () => {
  it('a plain query: one span from its start to its result, child of the caller, with the server', async () => {
    const sql = newSql();
    const rows = await tracing.inRequest('GET /plain', async () => sql`select 1 as one`);
    expect(rows[0]).toEqual({ one: 1 });
    const span = tracing.onlySpanNamed(CHECKOUT);
    expectCheckedIn(span);
    const request = tracing.onlySpanNamed('GET /plain');
    expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    const { host, port, database } = postgresConfig();
    expect(span.attributes['pool.library']).toBe('postgres');
    expect(span.attributes['db.system.name']).toBe('postgresql');
    expect(span.attributes['server.address']).toBe(host);
    expect(span.attributes['server.port']).toBe(port);
    expect(span.attributes['db.namespace']).toBe(database);
    expect(span.attributes['db.client.connection.pool.name']).toBe(`${host}:${port}/${database}`);
    expect(tracing.openLeaseCount()).toBe(0);
  });

  it('sql.reserve() until release(): one lease; its queries are statements of it; a second release is recorded', async () => {
    const sql = newSql();
    await warm(sql);
    await tracing.inRequest('GET /reserve', async () => {
      const reserved = await sql.reserve();
      expect(tracing.openLeaseCount()).toBe(1);
      const [row] = await reserved`select 2 as two`;
      expect(row).toEqual({ two: 2 });
      reserved.release();
      reserved.release();
    });
    const span = tracing.onlySpanNamed(CHECKOUT);
    expectCheckedIn(span);
    expect(span.parentSpanContext?.spanId).toBe(tracing.onlySpanNamed('GET /reserve').spanContext().spanId);
    expect(eventNamed(tracing.onlySpanNamed('GET /reserve'), 'pool.release.invalid')?.attributes?.['pool.release.reason']).toBe(
      'double_release',
    );
    expect(tracing.openLeaseCount()).toBe(0);
  });

  it('sql.begin(): one lease for the transaction, body in the caller context, result and errors unchanged', async () => {
    const sql = newSql();
    await warm(sql);
    let seenSpan: string | undefined;
    const result = await tracing.inRequest('POST /tx', () =>
      sql.begin(async (tx) => {
        seenSpan = trace.getActiveSpan()?.spanContext().spanId;
        const [row] = await tx`select 3 as three`;
        return row;
      }),
    );
    expect(result).toEqual({ three: 3 });
    expect(seenSpan).toBe(tracing.onlySpanNamed('POST /tx').spanContext().spanId);
    expectCheckedIn(tracing.onlySpanNamed(CHECKOUT));

    tracing.exporter.reset();
    const failure = new Error('rolled back');
    await expect(sql.begin(() => Promise.reject(failure))).rejects.toBe(failure);
    expectCheckedIn(tracing.onlySpanNamed(CHECKOUT));
    expect(tracing.openLeaseCount()).toBe(0);
  });
});

describe('call site', () => {
  it('names the application line of each checkout form', async () => {
    const sql = newSql();
    await warm(sql);
    async function loadUsers() {
      return sql`select 1 as id`; // line:plain
    }
    async function reserveForReport() {
      const reserved = await sql.reserve(); // line:reserve
      reserved.release();
    }
    async function transferMoney() {
      return sql.begin((tx) => tx`select 1`); // line:begin
    }
    await loadUsers();
    await reserveForReport();
    await transferMoney();
    const [plain, reserve, begin] = tracing.spansNamed(CHECKOUT);
    expect(plain!.attributes['code.function.name']).toBe('loadUsers');
    expect(plain!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'plain'));
    expect(String(plain!.attributes['code.file.path'])).toMatch(new RegExp(`${THIS_FILE}$`));
    expect(reserve!.attributes['code.function.name']).toBe('reserveForReport');
    expect(reserve!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'reserve'));
    expect(begin!.attributes['code.function.name']).toBe('transferMoney');
    expect(begin!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'begin'));
    for (const span of [reserve, begin]) expect(String(span!.attributes['code.stacktrace'])).not.toMatch(/node_modules[/\\]postgres/);
    // A plain query's stack is taken where the tagged template built it: postgres.js's `sql`
    // (which constructs the query) is its only library frame.
    const plainStack = String(plain!.attributes['code.stacktrace']).split('\n');
    expect(plainStack.filter((frame) => /node_modules[/\\]postgres/.test(frame))).toEqual([plainStack[0]]);
    expect(plainStack[0]).toMatch(/^\s*at sql /);
  });

  it('service style: plain functions return the query, begin() or reserve(); an async controller awaits them: each names the service function', async () => {
    const sql = newSql();
    await warm(sql);
    function getUser() {
      return sql`select 1 as id`; // line:service-plain
    }
    function getUserUnsafe() {
      return sql.unsafe('select 1 as id'); // line:service-unsafe
    }
    function transferFunds() {
      return sql.begin((tx) => tx`select 1`); // line:service-begin
    }
    function reserveConnection() {
      return sql.reserve(); // line:service-reserve
    }
    async function controller(service: () => PromiseLike<unknown>) {
      return await service(); // line:controller
    }
    tracing.exporter.reset();
    await controller(getUser);
    await controller(getUserUnsafe);
    await controller(transferFunds);
    const reserved = (await controller(reserveConnection)) as { release(): void };
    reserved.release();
    const checkouts = tracing.spansNamed(CHECKOUT);
    expect(checkouts.map((span) => span.attributes['code.function.name'])).toEqual(['getUser', 'getUserUnsafe', 'transferFunds', 'reserveConnection']);
    expect(checkouts.map((span) => span.attributes['code.line.number'])).toEqual(
      ['service-plain', 'service-unsafe', 'service-begin', 'service-reserve'].map((marker) => lineOf(import.meta.url, marker)),
    );
    for (const span of checkouts) expect(String(span.attributes['pool.call_path'])).toContain(' ← controller (');
  });

  it('a query built in an earlier run and awaited now names the line that awaits it; a later checkout never takes a query\'s call site', async () => {
    const sql = newSql();
    await warm(sql);
    const query = sql`select 1 as id`;
    await Promise.resolve();
    async function runPrepared() {
      return await query; // line:awaited-later
    }
    function getUser() {
      return sql`select 1 as id`;
    }
    async function reserveDirectly() {
      const reserved = await sql.reserve(); // line:direct
      reserved.release();
    }
    tracing.exporter.reset();
    await runPrepared();
    await getUser();
    await reserveDirectly();
    const [awaited, , direct] = tracing.spansNamed(CHECKOUT);
    expect(awaited!.attributes['code.function.name']).toBe('runPrepared');
    expect(awaited!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'awaited-later'));
    expect(direct!.attributes['code.function.name']).toBe('reserveDirectly');
    expect(direct!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'direct'));
  });
});

describe('wait queue', () => {
  it('a reserve() queued behind the only connection continues in its own context', async () => {
    const sql = newSql({ max: 1 });
    await warm(sql);
    const holder = await sql.reserve();
    let seenSpan: string | undefined;
    const waiting = tracing.inRequest('GET /waiter', async () => {
      const reserved = await sql.reserve();
      seenSpan = trace.getActiveSpan()?.spanContext().spanId;
      reserved.release();
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await tracing.tracer.startActiveSpan('releaser', async (span) => {
      holder.release();
      span.end();
    });
    await waiting;
    const request = tracing.onlySpanNamed('GET /waiter');
    expect(seenSpan).toBe(request.spanContext().spanId);
    const waited = tracing.spansNamed(CHECKOUT).find((span) => span.parentSpanContext?.spanId === request.spanContext().spanId)!;
    expect(waited.attributes['pool.wait_ms']).toBeGreaterThan(10);
  });

  it('a plain query queued behind a reserved connection is held from the grant only', async () => {
    const sql = newSql({ max: 1 });
    await warm(sql);
    const holder = await sql.reserve();
    const query = tracing.inRequest('GET /queued', async () => sql`select 4 as four`);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(tracing.openLeaseCount()).toBe(2);
    holder.release();
    expect(await query).toEqual([{ four: 4 }]);
    const request = tracing.onlySpanNamed('GET /queued');
    const queued = tracing.spansNamed(CHECKOUT).find((span) => span.parentSpanContext?.spanId === request.spanContext().spanId)!;
    expectCheckedIn(queued);
    expect(queued.attributes['pool.wait_ms']).toBeGreaterThan(20);
  });
});

describe('failures and ends', () => {
  it('connect error: the same rejection; the query checkout fails', async () => {
    const sql = postgres({ host: '127.0.0.1', port: 1, max: 1, connect_timeout: 1 });
    instances.push(sql);
    const error = await sql`select 1`.then(
      () => undefined,
      (failure: unknown) => failure as Error & { code?: string },
    );
    expect(error?.code).toBe('ECONNREFUSED');
    const span = tracing.onlySpanNamed(CHECKOUT);
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['pool.held_ms']).toBeUndefined();
  });

  // On the reserved form: a statement (or a transaction's ROLLBACK) sent on a connection the
  // server closed can crash postgres.js itself (connection.js nextWrite on a null socket; seen
  // in 4 of 8 runs without the instrumentation), so none is sent after the kill.
  it('pg_terminate_backend of a reserved connection: the lease stays held until release() ends it', async () => {
    const sql = newSql();
    const admin = newSql({ max: 1 });
    await warm(sql);
    await warm(admin);
    async function holdKilledConnection() {
      const reserved = await sql.reserve();
      const [row] = await reserved<{ pid: number }[]>`select pg_backend_pid() as pid`;
      await admin`select pg_terminate_backend(${row!.pid})`;
      return reserved;
    }
    const reserved = await holdKilledConnection();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(tracing.openLeaseCount()).toBe(1);
    reserved.release();
    const span = tracing.spansNamed(CHECKOUT).find((candidate) => candidate.attributes['code.function.name'] === 'holdKilledConnection')!;
    expectCheckedIn(span);
    expect(tracing.openLeaseCount()).toBe(0);
  });

  it('sql.end() with a reserved connection never released: the lease ends, as destroyed', async () => {
    const sql = postgres(connectionUrl(), { max: 1 });
    await warm(sql);
    await sql.reserve();
    expect(tracing.openLeaseCount()).toBe(1);
    await sql.end({ timeout: 0.05 });
    const span = tracing.onlySpanNamed(CHECKOUT);
    expect(span.attributes['pool.checkin.destroyed']).toBe(true);
    expect(tracing.openLeaseCount()).toBe(0);
  });
});

describe('the factory', () => {
  it('keeps its own properties and errors: the wrapped postgres() is the library to the application', async () => {
    expect(postgres.name).toBe('Postgres');
    expect(postgres.BigInt.to).toBe(20);
    expect(typeof postgres.toCamel).toBe('function');
    const sql = newSql();
    const error = await sql`select nonsense_column`.then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(postgres.PostgresError);
    expect((error as { code?: string }).code).toBe('42703');
  });
});

describe('no secrets in telemetry', () => {
  it('user name, password and URL never reach an attribute', async () => {
    const sql = newSql();
    await tracing.inRequest('GET /secret', async () => sql`select 1`);
    const text = allAttributeText(tracing.exporter.getFinishedSpans());
    expect(text).toContain(String(postgresConfig().port));
    expect(text).not.toContain(postgresConfig().password);
    expect(text).not.toContain('postgres://');
    expect(text).not.toMatch(new RegExp(`\\b${postgresConfig().user}@`));
  });
});

describe('disable and enable', () => {
  it('disable() restores Query.prototype and starts no lease; enable() patches again', async () => {
    const sql = newSql();
    const prototype = Object.getPrototypeOf(sql`select 1`) as { handle: unknown };
    expect(isPatchedByPoolLeak(prototype.handle)).toBe(true);
    tracing.instrumentation.disable();
    try {
      expect(isPatchedByPoolLeak(prototype.handle)).toBe(false);
      tracing.exporter.reset();
      await sql`select 1`;
      const reserved = await sql.reserve();
      reserved.release();
      await sql.begin((tx) => tx`select 1`);
      expect(tracing.spansNamed(CHECKOUT)).toHaveLength(0);
      expect(tracing.openLeaseCount()).toBe(0);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(isPatchedByPoolLeak(prototype.handle)).toBe(true);
    await sql`select 1`;
    expect(tracing.spansNamed(CHECKOUT)).toHaveLength(1);
  });
});

describe('an ES-module application (import, through the loader hook)', () => {
  it('postgres.js\'s ES-module build is hooked too: plain query and reserve() name their functions', async () => {
    // The built package, loaded by name as an application would (npm run build first).
    const run = await runNode(['--import', './test/fixtures/esm-setup.mjs', 'packages/instrumentation-pool-leak/test/adapters/fixtures/postgres-esm-app.mjs'], {
      timeoutMs: 20_000,
      env: postgresEnv(),
    });
    expect(run.code, run.context).toBe(0);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as {
      postgresEntry?: string;
      spans: { name: string; attributes: Record<string, unknown> }[];
    };
    expect(report.postgresEntry, run.context).toMatch(/\/postgres\/src\/index\.js(\?.*)?$/);
    const names = report.spans.filter((span) => span.name === CHECKOUT).map((span) => span.attributes['code.function.name']);
    expect(names, run.context).toEqual(['loadOne', 'reserveAndRelease', 'getThree']);
  });
});
