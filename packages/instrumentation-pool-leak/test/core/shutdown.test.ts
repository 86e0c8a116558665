// Leases still open when the tracer provider shuts down are ended then, with ERROR, and exported.
import { SpanStatusCode } from '@opentelemetry/api';
import { afterAll, expect, it } from 'vitest';
import { setupTracing } from '../support/tracing';
import { loadPg, postgresConfig } from '../support/pg';

const tracing = setupTracing();
const pg = loadPg();

afterAll(() => tracing.instrumentation.disable());

it('a leaked lease is exported at provider shutdown with status ERROR and its stack', async () => {
  const pool = new pg.Pool({ ...postgresConfig(), max: 2 });
  async function leakOnErrorPath() {
    const client = await pool.connect();
    client.on('error', () => {}); // the server closes it when the test run ends
    return client;
  }
  const leaked = await leakOnErrorPath();
  const returned = await pool.connect();
  returned.release();
  expect(tracing.spansNamed('pg-pool checkout')).toHaveLength(1);

  const exported = await tracing.shutdownKeepingExported();
  expect(exported.map((span) => span.name)).toEqual(['pg-pool checkout']);
  const [span] = exported;
  expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'lease still open at tracer provider shutdown' });
  expect(span!.attributes['code.function.name']).toBe('leakOnErrorPath');
  expect(span!.attributes['pool.held_ms']).toBeTypeOf('number');

  // The application can still release it later: nothing is thrown, nothing is reported as invalid.
  expect(() => leaked.release()).not.toThrow();
  await pool.end();
});
