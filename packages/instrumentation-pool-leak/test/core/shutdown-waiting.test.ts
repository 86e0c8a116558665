// A checkout still waiting when the tracer provider shuts down (#20): its span ends then with
// ERROR and says so — "checkout still waiting at shutdown", not "lease still open", since it
// never held a connection — while the held lease beside it keeps its own message.
import { SpanStatusCode } from '@opentelemetry/api';
import { afterAll, expect, it } from 'vitest';
import { setupTracing } from '../support/tracing';
import { loadPg, postgresConfig } from '../support/pg';
import { until } from '../support/mysql2';

const tracing = setupTracing();
const pg = loadPg();

afterAll(() => tracing.instrumentation.disable());

it('a waiting checkout and a held lease are ended at provider shutdown, each with its own message', async () => {
  // pg-pool waits forever by default: the second checkout is never granted.
  const pool = new pg.Pool({ ...postgresConfig(), max: 1 });
  const holder = await pool.connect();
  holder.on('error', () => {}); // the server closes it when the test run ends
  // Served only after the provider is gone, when the holder gives its connection back.
  const waiting = pool.connect().then((client) => client.release());
  await until('the second checkout to queue', () => pool.waitingCount === 1);

  const exported = await tracing.shutdownKeepingExported();

  const byMessage = exported.map((span) => [span.name, span.status, span.attributes['pool.held_ms'] === undefined ? 'never held' : 'held']);
  expect(byMessage).toEqual(
    expect.arrayContaining([
      ['pg-pool checkout', { code: SpanStatusCode.ERROR, message: 'checkout still waiting at shutdown' }, 'never held'],
      ['pg-pool checkout', { code: SpanStatusCode.ERROR, message: 'lease still open at tracer provider shutdown' }, 'held'],
    ]),
  );
  expect(exported).toHaveLength(2);

  holder.release();
  await waiting;
  await pool.end();
});
