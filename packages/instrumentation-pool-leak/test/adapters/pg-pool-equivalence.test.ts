// The application sees exactly the same pg-pool with and without the instrumentation: values,
// errors, callback arity and `this`, return shapes, and the order in which waiters are served.
import { expect, it } from 'vitest';
import { loadPg, postgresConfig, type Pg } from '../support/pg';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const pg = loadPg();

type Transcript = unknown[];

function describeValue(value: unknown): string {
  if (value instanceof Promise) return 'Promise';
  if (value === undefined) return 'undefined';
  return typeof value;
}

function errorShape(error: unknown) {
  const e = error as Error & { code?: string };
  return { name: e.name, message: e.message, code: e.code, isError: e instanceof Error };
}

async function scenario(library: Pg): Promise<Transcript> {
  const log: Transcript = [];
  const pool = new library.Pool({ ...postgresConfig(), max: 1, connectionTimeoutMillis: 150 });

  // Return shapes of both connect forms and of pool.query.
  const connecting = pool.connect();
  log.push(['connect() returns', describeValue(connecting)]);
  const client = await connecting;
  log.push(['release is', typeof client.release, client.release.length]);
  client.release();
  log.push(['connect(cb) returns', describeValue(pool.connect((_e, _c, done) => done()))]);
  await new Promise((resolve) => setTimeout(resolve, 10));

  // Callback arity and `this`.
  await new Promise<void>((resolve) =>
    pool.connect(function (this: unknown, ...args: unknown[]) {
      log.push(['callback args', args.length, describeValue(this), args.map(describeValue)]);
      (args[2] as () => void)();
      resolve();
    }),
  );

  // Query results and query errors, promise and callback forms.
  const result = await pool.query('SELECT 1 AS one, $1::text AS two', ['b']);
  log.push(['query rows', result.rows, result.rowCount, result.fields.map((field) => field.name)]);
  log.push(['query error', await pool.query('SELECT * FROM no_such_table').catch(errorShape)]);
  log.push([
    'query cb error',
    await new Promise((resolve) => pool.query('SELEC 1', (error: Error) => resolve(errorShape(error)))),
  ]);

  // Waiters are served in the order they asked.
  const holder = await pool.connect();
  const order: string[] = [];
  const waiters = Promise.allSettled(
    ['first', 'second', 'third'].map((name) =>
      pool.connect().then((c) => {
        order.push(name);
        c.release();
      }),
    ),
  );
  await new Promise((resolve) => setTimeout(resolve, 20));
  holder.release();
  log.push(['waiters', (await waiters).map((s) => s.status), order]);

  // A waiter that outlives connectionTimeoutMillis gets pg-pool's error.
  const blocker = await pool.connect();
  log.push(['timed out waiter', await pool.connect().catch(errorShape)]);
  blocker.release();

  // Double release: the library's own synchronous error.
  const twice = await pool.connect();
  twice.release();
  try {
    twice.release();
    log.push(['double release', 'no error']);
  } catch (error) {
    log.push(['double release', errorShape(error)]);
  }

  await pool.end();
  log.push(['after end', await pool.connect().catch(errorShape)]);
  return log;
}

it('the same transcript with the instrumentation disabled and enabled', async () => {
  tracing.instrumentation.disable();
  const without = await scenario(pg);
  tracing.instrumentation.enable();
  tracing.exporter.reset();
  const withIt = await scenario(pg);
  expect(withIt).toEqual(without);
  // And the instrumented run really was instrumented.
  expect(tracing.spansNamed('pg-pool checkout').length).toBeGreaterThan(8);
});
