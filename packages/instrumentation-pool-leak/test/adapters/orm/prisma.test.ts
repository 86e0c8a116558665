// Prisma 7 with the pg driver adapter (@prisma/adapter-pg on a pg Pool, the suite's PostgreSQL):
// `await prisma.user.findMany()` is a lazy Prisma promise whose query runs from `then()`, several
// awaits deep in Prisma's query interpreter; at the pg checkout every frame is Prisma's. The
// call-site hook carries where the application created the promise to that checkout (#10).
//
// The client is generated offline at test time (the `prisma-client` generator, CommonJS flavour)
// into .cache/, transpiled to JavaScript and required, so that the hooks see Prisma's runtime
// load as an application's `require` would.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadPg, postgresConfig } from '../../support/pg';
import { expectCheckedIn } from '../../support/spans';
import { setupTracing } from '../../support/tracing';
import { postgresEnv, runNode } from '../../../../../test/support/node-process';
import { callSiteAssertions, onlyChildNamed } from './support/call-site';

const tracing = setupTracing();
const pg = loadPg();
const requireHere = createRequire(import.meta.url);
const { expectCallSite } = callSiteAssertions(import.meta.url);
const CHECKOUT = 'pg-pool checkout';
const REPO = fileURLToPath(new URL('../../../../../', import.meta.url));
const OUT = join(REPO, '.cache', `prisma-call-sites-${process.pid}`);

/** The schema; `cjs` adds the CommonJS generator options. */
const schema = (table: string, cjs: boolean) => `
generator client {
  provider               = "prisma-client"
  output                 = "./generated"
${cjs ? CJS_OPTIONS : ''}}

datasource db {
  provider = "postgresql"
}

model User {
  id   Int    @id @default(autoincrement())
  name String

  @@map("${table}")
}
`;
const CJS_OPTIONS = `  moduleFormat           = "cjs"
  generatedFileExtension = "ts"
  importFileExtension    = ""
`;

interface User {
  id: number;
  name: string;
}
/** The slice of the generated client the tests use. */
interface Client {
  user: {
    findMany(args?: object): PromiseLike<User[]>;
    count(args?: object): PromiseLike<number>;
    create(args: { data: { name: string } }): PromiseLike<User>;
  };
  $transaction<T>(work: ((tx: Client) => Promise<T>) | PromiseLike<unknown>[]): Promise<T>;
  $disconnect(): Promise<void>;
}

/** `prisma generate` without network or schema engine, into `dir`. */
function generate(dir: string, schemaText: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'schema.prisma'), schemaText);
  execFileSync(process.execPath, [requireHere.resolve('prisma/build/index.js'), 'generate', '--schema', join(dir, 'schema.prisma')], {
    cwd: dir,
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: '/bin/true', PRISMA_HIDE_UPDATE_MESSAGE: '1' },
    stdio: 'pipe',
  });
  return join(dir, 'generated');
}

/** The CommonJS flavour, transpiled TypeScript → JavaScript, for `require`. */
function generateClient(): string {
  const generated = generate(join(OUT, 'cjs'), schema('prisma_call_site_users', true));
  const ts = requireHere('typescript') as typeof import('typescript');
  const transpile = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) transpile(path);
      else if (entry.endsWith('.ts')) {
        const { outputText } = ts.transpileModule(readFileSync(path, 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        });
        writeFileSync(path.replace(/\.ts$/, '.js'), outputText);
      }
    }
  };
  transpile(generated);
  return join(generated, 'client.js');
}

const spans = (): ReadableSpan[] => tracing.exporter.getFinishedSpans();

/**
 * The checkout's stack is the one taken where the application made the query: `fn` is in it,
 * and the driver adapter's frames at the checkout are not. (Without the hook, V8's async stack
 * trace may still reach the awaiting function below ~18 Prisma frames, but the exactness of
 * that depends on the stack cap and on the query being awaited directly.)
 */
function expectMadeIn(stacktrace: unknown, fn: string): void {
  expect(String(stacktrace)).toContain(`at ${fn} (`);
  expect(String(stacktrace)).not.toContain('PrismaPgAdapter');
}
let pool: InstanceType<typeof pg.Pool>;
let prisma: Client;
let PrismaClient: new (options: object) => Client;
let PrismaPg: new (pool: object) => object;

beforeAll(async () => {
  const clientFile = generateClient();
  ({ PrismaClient } = requireHere(clientFile) as { PrismaClient: typeof PrismaClient });
  ({ PrismaPg } = requireHere('@prisma/adapter-pg') as { PrismaPg: typeof PrismaPg });
  pool = new pg.Pool({ ...postgresConfig(), max: 3 });
  await pool.query('drop table if exists prisma_call_site_users; create table prisma_call_site_users (id serial primary key, name text not null)');
  await pool.query("insert into prisma_call_site_users (name) values ('ada'), ('grace')");
  prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
}, 120_000);
afterAll(async () => {
  await prisma?.$disconnect();
  await pool?.query('drop table prisma_call_site_users');
  await pool?.end();
  rmSync(OUT, { recursive: true, force: true });
  tracing.instrumentation.disable();
});
beforeEach(() => tracing.exporter.reset());

// --- The application. ---
async function listUsers() {
  return await prisma.user.findMany({ orderBy: { id: 'asc' } }); // line:list
}
async function countUsers() {
  return await prisma.user.count(); // line:count
}
function prepareAdaQuery() {
  return prisma.user.findMany({ where: { name: 'ada' } }); // line:prepared
}
async function addUserInTransaction() {
  return await prisma.$transaction(async (tx) => { // line:transaction
    const created = await tx.user.create({ data: { name: 'linus' } });
    return created.name;
  });
}

describe('Prisma 7 + @prisma/adapter-pg', () => {
  it('a query awaited directly: code.* name the function and line that made it', async () => {
    const users = await tracing.inRequest('GET /users', listUsers);
    expect(users.map((user) => user.name)).toEqual(['ada', 'grace']);
    const span = onlyChildNamed(spans(), CHECKOUT, 'GET /users');
    expectCheckedIn(span);
    expectCallSite(span, { functionName: 'listUsers', marker: 'list' });
    expectMadeIn(span.attributes['code.stacktrace'], 'listUsers');
  });

  it('two application functions, and both at once in one tick: each names its own function and line', async () => {
    await tracing.inRequest('GET /users', listUsers);
    await tracing.inRequest('GET /count', countUsers);
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /users'), { functionName: 'listUsers', marker: 'list' });
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /count'), { functionName: 'countUsers', marker: 'count' });
    tracing.exporter.reset();
    const [users, count] = await tracing.inRequest('GET /both', () => Promise.all([listUsers(), countUsers()]));
    expect(users).toHaveLength(count);
    const checkouts = spans().filter((span) => span.name === CHECKOUT);
    expect(checkouts.map((span) => span.attributes['code.function.name']).sort()).toEqual(['countUsers', 'listUsers']);
  });

  it('a query made at start-up and awaited later from a request names where it was made', async () => {
    const adaQuery = prepareAdaQuery();
    async function handleAda() {
      return await adaQuery;
    }
    expect((await tracing.inRequest('GET /ada', handleAda)).map((user) => user.name)).toEqual(['ada']);
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /ada'), { functionName: 'prepareAdaQuery', marker: 'prepared' });
  });

  it('$transaction(fn): the transaction\'s checkout names the line that opened it', async () => {
    expect(await tracing.inRequest('POST /users', addUserInTransaction)).toBe('linus');
    const span = onlyChildNamed(spans(), CHECKOUT, 'POST /users');
    expectCheckedIn(span);
    expectCallSite(span, { functionName: 'addUserInTransaction', marker: 'transaction' });
  });

  it('$transaction([...]): the batch\'s checkout names the line that ran it', async () => {
    async function countTwiceAtomically() {
      return await prisma.$transaction([prisma.user.count(), prisma.user.count()]); // line:batch
    }
    const [first, second] = (await tracing.inRequest('GET /twice', countTwiceAtomically)) as unknown as number[];
    expect(first).toBe(second);
    expectCallSite(onlyChildNamed(spans(), CHECKOUT, 'GET /twice'), { functionName: 'countTwiceAtomically', marker: 'batch' });
  });

  it('errors reach the application unchanged', async () => {
    const error = await prisma.user.create({ data: { name: null as unknown as string } }).then(
      () => undefined,
      (failure: unknown) => failure as Error,
    );
    expect(error?.constructor.name).toBe('PrismaClientValidationError');
  });

  it('an ES-module application (the generator\'s default ES-module client, imported through the loader hook): the same call sites', async () => {
    const generated = generate(join(OUT, 'esm'), schema('prisma_esm_users', false));
    writeFileSync(join(generated, 'package.json'), '{ "type": "module" }\n');
    // The built package, loaded by name as an application would (npm run build first).
    const run = await runNode(
      ['--import', './test/fixtures/esm-setup.mjs', 'packages/instrumentation-pool-leak/test/adapters/orm/fixtures/prisma-esm-app.mjs'],
      { timeoutMs: 25_000, env: { ...postgresEnv(), PRISMA_CLIENT: join(generated, 'client.ts') } },
    );
    expect(run.code, run.context).toBe(0);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as {
      runtimeEntry?: string;
      spans: { name: string; attributes: Record<string, unknown> }[];
    };
    // Node resolves Prisma's runtime to the same file for import as for require; imported, it
    // reaches the instrumentation through the loader hook (import-in-the-middle's `?iitm` URL).
    expect(report.runtimeEntry, run.context).toMatch(/\/@prisma\/client\/runtime\/client\.js\?iitm=true$/);
    const checkouts = report.spans.filter((span) => span.name === CHECKOUT);
    expect(checkouts.length, run.context).toBeGreaterThanOrEqual(2);
    const fromListUsers = checkouts.filter((span) => span.attributes['code.function.name'] === 'listUsers');
    expect(fromListUsers, run.context).toHaveLength(2);
    for (const span of fromListUsers) {
      expect(String(span.attributes['code.file.path'])).toMatch(/prisma-esm-app\.mjs$/);
      expectMadeIn(span.attributes['code.stacktrace'], 'listUsers');
    }
  }, 60_000);

  it('disable(): new Prisma promises run unwrapped; enable() carries again', async () => {
    const carried = () => prisma.user.count().then.name === 'runWithCallSite';
    expect(carried()).toBe(true);
    tracing.instrumentation.disable();
    try {
      expect(carried()).toBe(false);
      expect(await prisma.user.count()).toBeGreaterThan(0);
    } finally {
      tracing.instrumentation.enable();
    }
    expect(carried()).toBe(true);
  });
});
