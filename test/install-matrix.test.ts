// The package as users install it: `npm pack`, then plain `npm install <tarball>` into throwaway
// applications on either OpenTelemetry JS SDK generation, outside the workspace (under the OS
// temp directory, so Node's resolution can never reach the workspace's node_modules). Each app
// (test/fixtures/install-apps/) runs a small HTTP service on the suite's PostgreSQL and exports
// to the loopback OTLP receiver; what is asserted is what the SDK sent. The packed package is the
// BUILT one: `npm run build -w opentelemetry-instrumentation-pool-leak` first (`npm test` does).
//
// One install serves every row of its generation and bundle choice: the apps of a row differ only
// in files and command line, never in what is installed. Rows with the auto-instrumentations
// bundle get their own install, because the register entry looks for it. The install without the
// bundle also holds every pool library, for the ES-module app that imports each of them directly
// (direct-imports.mjs, on the suite's PostgreSQL, MariaDB and Redis).
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nodeBinary } from './support/node-binary';
import { cleanEnv, postgresEnv, REPO_ROOT, runNode, type Ended } from './support/node-process';
import { startOtlpReceiver, type ReceivedSpan } from './support/otlp-receiver';
import { limiter } from './support/limiter';

const PACKAGE_NAME = 'opentelemetry-instrumentation-pool-leak';
const PACKAGE_DIR = join(REPO_ROOT, 'packages', 'instrumentation-pool-leak');
const PACK_DIR = join(REPO_ROOT, '.cache', 'pack');
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'install-apps');
const REGISTER = `${PACKAGE_NAME}/register`;
const CHECKOUT = 'pg-pool checkout';
const LEAK = 'pg-pool leak';
const ROUTES = ['hold', 'waiter', 'handoff', 'slow'] as const;
// OTLP's span kind numbering, as the receiver decodes it.
const OTLP_SPAN_KIND_SERVER = 2;
/** The app's one leak: /slow holds 1500 ms; everything else holds for milliseconds (margin for a loaded CI machine). */
const LEAK_THRESHOLD_MS = '600';
/** npm and app runs at once: two cores are shared with the other test files. */
const PARALLEL = 2;
const INSTALL_TIMEOUT_MS = 240_000;
const RUN_TIMEOUT_MS = 45_000;
/**
 * What direct-imports.mjs imports, and the checkout span each import's use must make. The
 * packages are installed at the ranges the workspace's own tests use (root package.json).
 */
const DIRECT_IMPORTS = {
  'generic-pool': { checkout: 'generic-pool checkout', returns: 'released' },
  tarn: { checkout: 'tarn checkout', returns: 'released' },
  pg: { checkout: 'pg-pool checkout', returns: 1 },
  'pg-pool': { checkout: 'pg-pool checkout', returns: 2 },
  mysql2: { checkout: 'mysql2 checkout', returns: 3 },
  'mysql2/promise': { checkout: 'mysql2 checkout', returns: 4 },
  mariadb: { checkout: 'mariadb checkout', returns: 5 },
  postgres: { checkout: 'postgres checkout', returns: 6 },
  redis: { checkout: 'redis checkout', returns: 'PONG' },
  sequelize: { checkout: 'sequelize-pool checkout', returns: 7 },
  knex: { checkout: 'tarn checkout', returns: 8 },
} as const;
const LIBRARY_PACKAGES = ['generic-pool', 'tarn', 'pg-pool', 'mysql2', 'mariadb', 'postgres', 'redis', 'sequelize', 'knex'] as const;
const DIRECT_APP = 'direct-imports.mjs';

interface Generation {
  readonly title: string;
  /** What the app itself depends on, besides the tarball and pg. */
  readonly packages: readonly string[];
  readonly autoBundle: string;
  readonly api: RegExp;
  /** The `@opentelemetry/instrumentation` our package must resolve to in that app. */
  readonly instrumentation: RegExp;
}

const GENERATIONS = {
  '2.x': {
    title: 'SDK 2.x',
    packages: ['@opentelemetry/api@~1.9.0', '@opentelemetry/sdk-node@0.209.0'],
    autoBundle: '@opentelemetry/auto-instrumentations-node@0.76.0',
    api: /^1\.9\./,
    instrumentation: /^0\.2\d\d\./,
  },
  '3.x': {
    title: 'SDK 3.x',
    packages: ['@opentelemetry/api@~1.10.0', '@opentelemetry/sdk-node@^0.301.0'],
    autoBundle: '@opentelemetry/auto-instrumentations-node@^0.82.0',
    api: /^1\.10\./,
    instrumentation: /^0\.3\d\d\./,
  },
} satisfies Record<string, Generation>;
type GenerationName = keyof typeof GENERATIONS;

interface Row {
  readonly sdk: GenerationName;
  readonly node: string;
  readonly format: 'cjs' | 'esm';
  readonly entry: 'programmatic' | 'register';
  readonly auto: boolean;
}

const FORMATS = ['cjs', 'esm'] as const;
const ENTRIES = ['programmatic', 'register'] as const;
const rowsOf = (sdk: GenerationName, node: string): Row[] =>
  [false, true].flatMap((auto) => FORMATS.flatMap((format) => ENTRIES.map((entry) => ({ sdk, node, format, entry, auto }))));
const ROWS: Row[] = [...rowsOf('2.x', '24'), ...rowsOf('3.x', '24'), ...rowsOf('3.x', '22'), ...rowsOf('3.x', '26')];

const rowTitle = (row: Row) =>
  `${GENERATIONS[row.sdk].title}, Node ${row.node}, ${row.format.toUpperCase()}, ${row.entry === 'register' ? (row.format === 'esm' ? '--import register' : '-r register') : 'programmatic'}, ${row.auto ? 'with' : 'without'} auto-instrumentations`;

/** `node` arguments of a row: the preload the README shows for that module format. */
function commandLine(row: Row): string[] {
  const preload = row.format === 'esm' ? '--import' : '-r';
  const setup = row.entry === 'register' ? REGISTER : `./setup.${row.format === 'esm' ? 'mjs' : 'cjs'}`;
  return [preload, setup, `app.${row.format === 'esm' ? 'mjs' : 'cjs'}`];
}

const slot = limiter(PARALLEL);

interface Command {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

function run(file: string, args: readonly string[], cwd: string, timeout: number): Promise<Command> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: cleanEnv(), timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** The pool libraries at the workspace's own ranges. */
function libraryPackages(): string[] {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  return LIBRARY_PACKAGES.map((name) => {
    const range = manifest.devDependencies[name];
    if (range === undefined) throw new Error(`${name} is not a devDependency of the workspace: add it, or drop it from LIBRARY_PACKAGES`);
    return `${name}@${range}`;
  });
}

let tarball: string;
let appsRoot: string;
const installs = new Map<string, Promise<string>>();
const installTimes: string[] = [];
const outcomes = new Map<Row, string>();
/** Outcome of each direct-import row, by title. */
const directOutcomes = new Map<string, string>();

/** npm's lines about peer dependencies or our package: a clean install has none. */
function installComplaints(stderr: string): string[] {
  return stderr.split('\n').filter((line) => /ERESOLVE|peer dep|conflicting peer|opentelemetry-instrumentation-pool-leak/i.test(line));
}

/** Every installed copy of a package, from npm's own record of the tree. */
function installedCopies(appDir: string, name: string): string[] {
  const lock = JSON.parse(readFileSync(join(appDir, 'node_modules', '.package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string }>;
  };
  return Object.entries(lock.packages)
    .filter(([path]) => path === `node_modules/${name}` || path.endsWith(`/node_modules/${name}`))
    .map(([path, { version }]) => `${path}@${version ?? '?'}`);
}

/** The app directory for a generation and bundle choice, installed once (npm's cache keeps it fast). */
function installedApp(sdk: GenerationName, auto: boolean): Promise<string> {
  const key = `${sdk}${auto ? '-auto' : ''}`;
  let install = installs.get(key);
  if (install === undefined) {
    install = slot(async () => {
      const generation = GENERATIONS[sdk];
      const appDir = join(appsRoot, `sdk-${key}`);
      mkdirSync(appDir, { recursive: true });
      writeFileSync(join(appDir, 'package.json'), `${JSON.stringify({ name: `pool-leak-app-sdk-${key}`, version: '1.0.0', private: true }, null, 2)}\n`);
      cpSync(FIXTURES, appDir, { recursive: true });
      const packages = [tarball, 'pg@^8.23.0', ...generation.packages, ...(auto ? [generation.autoBundle] : libraryPackages())];
      console.log(`[install-matrix] ${generation.title}${auto ? ' + auto-instrumentations' : ''}: npm install ${packages.map((p) => (p === tarball ? relative(appDir, p) : p)).join(' ')}`);
      // --prefer-offline: package metadata from npm's cache when it has it (what is resolved is
      // the same; npm only skips asking the registry whether its copy is current).
      const npm = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packages], appDir, INSTALL_TIMEOUT_MS);
      const seconds = (npm.ms / 1000).toFixed(1);
      console.log(`[install-matrix] ${generation.title}${auto ? ' + auto-instrumentations' : ''}: exit ${npm.code} in ${seconds} s`);
      installTimes.push(`${generation.title}${auto ? ' + auto' : ''}: ${seconds} s`);
      const context = `npm install in ${appDir} exited ${npm.code}\n${npm.stdout}\n${npm.stderr}`;
      if (npm.code !== 0) throw new Error(context);
      const complaints = installComplaints(npm.stderr);
      if (complaints.length > 0) throw new Error(`npm complained about peers or our package:\n${complaints.join('\n')}\n${context}`);
      const apis = installedCopies(appDir, '@opentelemetry/api');
      if (apis.length !== 1) throw new Error(`expected exactly one @opentelemetry/api in the app, found ${apis.join(', ')}`);
      return appDir;
    });
    installs.set(key, install);
  }
  return install;
}

beforeAll(async () => {
  mkdirSync(PACK_DIR, { recursive: true });
  // --ignore-scripts: pack what `npm run build` left, without rebuilding under other test files.
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', PACK_DIR], PACKAGE_DIR, 60_000);
  if (pack.code !== 0) throw new Error(`npm pack failed:\n${pack.stderr}`);
  const [packed] = JSON.parse(pack.stdout) as { filename: string }[];
  if (packed === undefined) throw new Error(`npm pack printed no file:\n${pack.stdout}`);
  tarball = join(PACK_DIR, packed.filename);
  appsRoot = mkdtempSync(join(tmpdir(), 'pool-leak-install-matrix-'));
}, 90_000);

afterAll(async () => {
  const lines = ROWS.map((row) => `| ${rowTitle(row).split(', ').join(' | ')} | ${outcomes.get(row) ?? 'not run'} |`);
  console.log(
    [
      '[install-matrix] results',
      '| SDK | Node | module format | entry | bundle | result |',
      '|---|---|---|---|---|---|',
      ...lines,
      '| direct imports (ES module): SDK, Node, set-up | result |',
      '|---|---|',
      ...[...directOutcomes].map(([title, outcome]) => `| ${title} | ${outcome} |`),
      `[install-matrix] npm install times (cache warm unless the first run): ${installTimes.join('; ')}`,
    ].join('\n'),
  );
  // Some 40 000 files: removed off the main thread, with time for a busy disk.
  if (appsRoot !== undefined) await rm(appsRoot, { recursive: true, force: true });
}, 300_000);

describe('the packed tarball', () => {
  it('every published .js names a map in the tarball, and every map carries the sources it points at', async () => {
    const unpacked = join(appsRoot, 'unpacked');
    mkdirSync(unpacked);
    const untar = await run('tar', ['-xzf', tarball, '-C', unpacked], unpacked, 30_000);
    expect(untar.code, untar.stderr).toBe(0);
    const root = join(unpacked, 'package');
    const files = (readdirSync(root, { recursive: true }) as string[]).map((file) => file.split('\\').join('/'));
    const scripts = files.filter((file) => file.endsWith('.js'));
    expect(scripts.length, 'compiled modules in the tarball').toBeGreaterThan(10);
    expect(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')), 'no TypeScript sources shipped').toEqual([]);

    for (const script of scripts) {
      const mapName = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(root, script), 'utf8'))?.[1];
      expect(mapName, `${script} names its source map`).toBeDefined();
      const mapFile = join(dirname(script), mapName ?? '');
      expect(files, `${script}'s map is in the tarball`).toContain(mapFile);
      const map = JSON.parse(readFileSync(join(root, mapFile), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      expect(map.sources.length, mapFile).toBeGreaterThan(0);
      map.sources.forEach((source, index) => {
        // A map source resolves when the tarball holds the file or the map inlines it; the
        // inlined text must be the source the module was compiled from.
        const shipped = join(root, dirname(mapFile), source);
        const text = map.sourcesContent?.[index] ?? (existsSync(shipped) ? readFileSync(shipped, 'utf8') : undefined);
        const repoSource = join(PACKAGE_DIR, dirname(mapFile), source);
        expect(text, `${mapFile}: ${source} is neither inlined nor in the tarball`).toBeDefined();
        expect(text, `${mapFile}: ${source}`).toBe(readFileSync(repoSource, 'utf8'));
      });
    }
  });

  it('declares the OpenTelemetry API and instrumentation as peers, not dependencies of its own', () => {
    const manifest = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
    };
    expect(Object.keys(manifest.dependencies ?? {})).not.toContain('@opentelemetry/api');
    expect(Object.keys(manifest.dependencies ?? {})).not.toContain('@opentelemetry/instrumentation');
    expect(Object.keys(manifest.peerDependencies ?? {})).toEqual(
      expect.arrayContaining(['@opentelemetry/api', '@opentelemetry/instrumentation', '@opentelemetry/sdk-node']),
    );
  });
});

/** The one span of this name; fails listing what there was. */
function only(spans: readonly ReceivedSpan[], name: string, context: string): ReceivedSpan {
  const found = spans.filter((span) => span.name === name);
  expect(found.map((span) => span.name), `${context}\nexactly one "${name}" span`).toEqual([name]);
  return found[0] as ReceivedSpan;
}

interface AppResult {
  responses: unknown[];
  observed: Record<string, { value: unknown; traceId: string }> & { waiterCallbackTraceId?: string | null };
  node: string;
  api: string;
  instrumentation: string;
}

function expectRow(row: Row, ended: Ended, spans: readonly ReceivedSpan[]): void {
  const generation = GENERATIONS[row.sdk];
  const names = spans.map((span) => span.name);
  const context = `${ended.context}spans: ${JSON.stringify(names)}\n`;
  expect(ended.code, context).toBe(0);

  // The application behaves as without instrumentation, on the runtime and API asked for.
  const result = JSON.parse(ended.stdout.trim().split('\n').at(-1) ?? '') as AppResult;
  expect(result.responses, context).toEqual(['held', 2, 'handed off', 'slow']);
  expect(result.node.startsWith(`v${row.node}.`), context).toBe(true);
  expect(result.api, context).toMatch(generation.api);
  expect(result.instrumentation, `${context}our package resolved @opentelemetry/instrumentation ${result.instrumentation}`).toMatch(
    generation.instrumentation,
  );
  expect(ended.stderr.split('\n').filter((line) => line !== '' && !expectedOnStderr(row, line)), context).toEqual([]);

  // Request parents: every checkout is a child of its handler's span, which is a child of the
  // HTTP server span when the bundle is there.
  const handlers = new Map(ROUTES.map((route) => [route, only(spans, `handle ${route}`, context)]));
  const checkouts = spans.filter((span) => span.name === CHECKOUT);
  expect(checkouts.length, context).toBe(ROUTES.length);
  const checkoutOf = (route: (typeof ROUTES)[number]) => {
    const handler = handlers.get(route) as ReceivedSpan;
    const found = checkouts.filter((span) => span.parentSpanId === handler.spanId);
    expect(found.length, `${context}one checkout under "handle ${route}"`).toBe(1);
    expect(found[0]?.attributes['code.file.path'], `${context}call site of ${route}`).toMatch(/scenario\.cjs$/);
    return found[0] as ReceivedSpan;
  };
  for (const [route, handler] of handlers) {
    checkoutOf(route);
    const parent = spans.find((span) => span.spanId === handler.parentSpanId);
    if (row.auto) {
      expect(parent?.kind, `${context}"handle ${route}" runs inside an HTTP server span`).toBe(OTLP_SPAN_KIND_SERVER);
    } else {
      expect(handler.parentSpanId, `${context}"handle ${route}" is a root span`).toBeUndefined();
    }
  }

  // Context through the pool's wait queue: the waiter's callback ran in its own request's trace.
  const waiter = checkoutOf('waiter');
  expect(result.observed.waiterCallbackTraceId, context).toBe(result.observed['waiter']?.traceId);
  expect(waiter.traceId, context).toBe(result.observed['waiter']?.traceId);
  expect(waiter.attributes['pool.wait_ms'], `${context}the waiter waited`).toBeGreaterThan(0);

  // Exactly one loop-tick checkin (the sweeper's) and one leak span (/slow's).
  const loopTicks = spans.flatMap((span) => span.events.filter((event) => event.name === 'pool.checkin.loop_tick').map(() => span));
  expect(loopTicks.map((span) => span.spanId), `${context}one loop-tick event, on the handoff checkout`).toEqual([
    checkoutOf('handoff').spanId,
  ]);
  const leak = only(spans, LEAK, context);
  const slow = checkoutOf('slow');
  expect(leak.parentSpanId, context).toBe(handlers.get('slow')?.spanId);
  expect(leak.links.map((link) => link.spanId), context).toContain(slow.spanId);
  expect(slow.events.map((event) => event.name), context).toEqual(expect.arrayContaining(['pool.leak.suspected', 'pool.leak.returned']));

}

/**
 * What may be on stderr: the register entry's one hint when nothing gives request parents, and
 * Node 26's deprecation of `module.register()`, which the README's ES-module set-up (the
 * OpenTelemetry docs' recipe) calls.
 */
function expectedOnStderr(row: Row, line: string): boolean {
  if (row.entry === 'register' && !row.auto) return line.startsWith(`${REGISTER}: `) && line.includes('@opentelemetry/auto-instrumentations-node');
  if (row.entry === 'programmatic' && row.format === 'esm' && Number(row.node) >= 26) {
    return line.includes('[DEP0205]') || line.startsWith('(Use `node --trace-deprecation');
  }
  return false;
}

/** Spans of the contrib pg instrumentation, for the table (coexistence is asserted in the coexistence suites). */
function contribPgSpans(spans: readonly ReceivedSpan[]): string {
  const names = spans.filter((span) => span.scope === '@opentelemetry/instrumentation-pg').map((span) => span.name.split(':')[0]);
  const counts = new Map<string, number>();
  for (const name of names) counts.set(name ?? '', (counts.get(name ?? '') ?? 0) + 1);
  return [...counts].map(([name, count]) => `${count}×${name}`).join(' ') || 'none';
}

describe.concurrent('installed from the tarball', () => {
  it.each(ROWS.map((row) => [rowTitle(row), row] as const))('%s', async (_title, row) => {
    let outcome = 'FAILED';
    try {
      const appDir = await installedApp(row.sdk, row.auto);
      const node = nodeBinary(row.node);
      const ended = await slot(async () => {
        const receiver = await startOtlpReceiver();
        try {
          const started = performance.now();
          const end = await runNode(commandLine(row), {
            cwd: appDir,
            node,
            timeoutMs: RUN_TIMEOUT_MS,
            env: {
              ...postgresEnv(),
              OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
              OTEL_METRICS_EXPORTER: 'none',
              OTEL_LOGS_EXPORTER: 'none',
              OTEL_SERVICE_NAME: 'install-matrix-app',
              OTEL_POOL_LEAK_THRESHOLD_MS: LEAK_THRESHOLD_MS,
              APP_WITH_AUTO: row.auto ? '1' : '0',
            },
          });
          return { end, spans: receiver.spans(), ms: performance.now() - started };
        } finally {
          await receiver.close();
        }
      });
      expectRow(row, ended.end, ended.spans);
      outcome = `ok (${(ended.ms / 1000).toFixed(1)} s)${row.auto ? `; contrib pg spans: ${contribPgSpans(ended.spans)}` : ''}`;
    } finally {
      outcomes.set(row, outcome);
    }
  }, 400_000);
});

interface DirectRow {
  readonly sdk: GenerationName;
  readonly entry: 'programmatic' | 'register';
}

const DIRECT_ROWS: DirectRow[] = (['2.x', '3.x'] as const).flatMap((sdk) => ENTRIES.map((entry) => ({ sdk, entry })));
const directTitle = (row: DirectRow) =>
  `${GENERATIONS[row.sdk].title}, Node 24, ${row.entry === 'register' ? '--import register' : '--import ./setup.mjs (register() of the OpenTelemetry hook)'}`;

/** The servers direct-imports.mjs needs besides PostgreSQL, as its variables; or why they are missing. */
function serverEnv(): Record<string, string> | { missing: string } {
  const mariadb = inject('mariadb');
  const redis = inject('redis');
  if ('unavailable' in mariadb) return { missing: mariadb.unavailable };
  if ('unavailable' in redis) return { missing: redis.unavailable };
  const { host, port, user, password, database } = mariadb.connection;
  return {
    APP_MARIADB_HOST: host,
    APP_MARIADB_PORT: String(port),
    APP_MARIADB_USER: user,
    APP_MARIADB_PASSWORD: password,
    APP_MARIADB_DATABASE: database,
    APP_REDIS_URL: `redis://:${encodeURIComponent(redis.connection.password)}@${redis.connection.host}:${redis.connection.port}`,
  };
}

/** Line of each `// checkout: <specifier>` marker in direct-imports.mjs: where each checkout is made. */
function checkoutLines(): Map<string, number> {
  const lines = readFileSync(join(FIXTURES, DIRECT_APP), 'utf8').split('\n');
  const found = new Map<string, number>();
  lines.forEach((line, index) => {
    const specifier = /\/\/ checkout: (\S+)$/.exec(line)?.[1];
    if (specifier !== undefined) found.set(specifier, index + 1);
  });
  return found;
}

function expectDirectRow(row: DirectRow, ended: Ended, spans: readonly ReceivedSpan[]): void {
  const context = `${ended.context}spans: ${JSON.stringify(spans.map((span) => `${span.name} ${span.spanId} <- ${span.parentSpanId ?? '-'}`))}\n`;
  expect(ended.code, context).toBe(0);
  const result = JSON.parse(ended.stdout.trim().split('\n').at(-1) ?? '') as { results: Record<string, unknown>; instrumentation: string };
  // The application behaves as without instrumentation, on the generation asked for.
  expect(result.results, context).toEqual(Object.fromEntries(Object.entries(DIRECT_IMPORTS).map(([specifier, { returns }]) => [specifier, returns])));
  expect(result.instrumentation, context).toMatch(GENERATIONS[row.sdk].instrumentation);
  const stderr = ended.stderr.split('\n').filter((line) => line !== '');
  const hint = (line: string) => row.entry === 'register' && line.startsWith(`${REGISTER}: `) && line.includes('@opentelemetry/auto-instrumentations-node');
  expect(stderr.filter((line) => !hint(line)), `${context}nothing on stderr (no loader warnings)`).toEqual([]);

  // Every library imported directly is patched: one checkout under its use, at the app's line.
  const lines = checkoutLines();
  for (const [specifier, { checkout }] of Object.entries(DIRECT_IMPORTS)) {
    const use = only(spans, `use ${specifier}`, context);
    const under = spans.filter((span) => span.parentSpanId === use.spanId);
    expect(under.map((span) => span.name), `${context}the checkout under "use ${specifier}"`).toEqual([checkout]);
    expect(under[0]?.attributes['code.file.path'], `${context}call site of ${specifier}`).toMatch(/direct-imports\.mjs$/);
    expect(under[0]?.attributes['code.line.number'], `${context}call site line of ${specifier}`).toBe(lines.get(specifier));
  }
}

describe.concurrent('an ES-module app importing every pool library directly, installed from the tarball', () => {
  const servers = serverEnv();
  const missing = 'missing' in servers ? servers.missing : undefined;
  if (missing !== undefined) console.warn(`[install-matrix] SKIPPING the direct-import rows: ${missing}`);
  const serverVars = 'missing' in servers ? {} : servers;
  it.skipIf(missing !== undefined).each(DIRECT_ROWS.map((row) => [directTitle(row), row] as const))('%s', async (title, row) => {
    let outcome = 'FAILED';
    try {
      const appDir = await installedApp(row.sdk, false);
      const ended = await slot(async () => {
        const receiver = await startOtlpReceiver();
        try {
          const started = performance.now();
          const setup = row.entry === 'register' ? REGISTER : './setup.mjs';
          const end = await runNode(['--import', setup, DIRECT_APP], {
            cwd: appDir,
            node: nodeBinary('24'),
            timeoutMs: RUN_TIMEOUT_MS,
            env: {
              ...postgresEnv(),
              ...serverVars,
              OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
              OTEL_METRICS_EXPORTER: 'none',
              OTEL_LOGS_EXPORTER: 'none',
              OTEL_SERVICE_NAME: 'install-matrix-direct-imports',
              APP_WITH_AUTO: '0',
            },
          });
          return { end, spans: receiver.spans(), ms: performance.now() - started };
        } finally {
          await receiver.close();
        }
      });
      expectDirectRow(row, ended.end, ended.spans);
      outcome = `ok (${(ended.ms / 1000).toFixed(1)} s)`;
    } finally {
      directOutcomes.set(title, outcome);
    }
  }, 400_000);
});
