// The pool's own timeout error, as the application receives it from a real exhausted pg pool:
// it always carries the holders in a non-enumerable `poolHolders`; with enrichErrors (or
// OTEL_POOL_LEAK_ENRICH_ERRORS=true) they are also appended to the message and the stack's first
// line. Off, message, stack, JSON.stringify and util.inspect are byte-identical to an error that
// never had the property.
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPg, postgresConfig } from '../support/pg';
import { setupTracing } from '../support/tracing';

const POOL_TIMEOUT = 'timeout exceeded when trying to connect';
const tracing = setupTracing();
const pg = loadPg();
afterAll(() => tracing.instrumentation.disable());

type PoolError = Error & { poolHolders?: readonly string[] };

/** Holds the pool's one connection inside a transaction and asks for a second one. */
async function exhaustedError(): Promise<{ error: PoolError }> {
  const pool = new pg.Pool({ ...postgresConfig(), max: 1, connectionTimeoutMillis: 250 });
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT relname FROM pg_class WHERE relname = $1', ['nothing-secret']);
    const error = (await pool.connect().then(
      () => {
        throw new Error('the second checkout should have timed out');
      },
      (reason: unknown) => reason,
    )) as PoolError;
    return { error };
  } finally {
    await client.query('ROLLBACK');
    client.release();
    await pool.end();
  }
}

/** Every way an application or its logger turns an error into text. */
function renderings(error: PoolError) {
  return {
    message: error.message,
    stack: error.stack,
    json: JSON.stringify(error),
    inspect: inspect(error),
    inspectDepth: inspect(error, { depth: 5, colors: false }),
    keys: Object.keys(error),
    string: String(error),
  };
}

describe('holders on the pool error', () => {
  it('off (default): poolHolders is there, and nothing the app can print changes', async () => {
    tracing.instrumentation.setConfig({ enrichErrors: false });
    const { error } = await exhaustedError();
    expect(error.poolHolders).toEqual([expect.stringMatching(/ held \d+ ms — idle \d+ ms in transaction, last SELECT pg_class$/)]);
    expect(Object.getOwnPropertyDescriptor(error, 'poolHolders')?.enumerable).toBe(false);
    expect(Object.isFrozen(error.poolHolders)).toBe(true);

    const withProperty = renderings(error);
    expect(withProperty.message).toBe(POOL_TIMEOUT);
    expect(withProperty.stack?.split('\n')[0]).toBe(`Error: ${POOL_TIMEOUT}`);
    delete error.poolHolders;
    expect(renderings(error)).toEqual(withProperty);
  });

  it('on: the message and the first stack line name the holders; the rest of the stack is kept', async () => {
    tracing.instrumentation.setConfig({ enrichErrors: true });
    try {
      const { error } = await exhaustedError();
      const [holder] = error.poolHolders ?? [];
      expect(holder).toMatch(/ held \d+ ms — idle \d+ ms in transaction, last SELECT pg_class$/);
      expect(error.message).toBe(`${POOL_TIMEOUT}; pool holders: ${holder}`);
      const [firstLine, ...frames] = (error.stack ?? '').split('\n');
      expect(firstLine).toBe(`Error: ${error.message}`);
      expect(frames.length).toBeGreaterThan(0);
      expect(frames.every((line) => line.trimStart().startsWith('at '))).toBe(true);
      expect(Object.keys(error)).not.toContain('poolHolders');
    } finally {
      tracing.instrumentation.setConfig({});
    }
  });

  it('OTEL_POOL_LEAK_ENRICH_ERRORS=true turns it on when the code says nothing', async () => {
    process.env['OTEL_POOL_LEAK_ENRICH_ERRORS'] = 'true';
    try {
      tracing.instrumentation.setConfig({});
      const { error } = await exhaustedError();
      expect(error.message.startsWith(`${POOL_TIMEOUT}; pool holders: `)).toBe(true);
    } finally {
      delete process.env['OTEL_POOL_LEAK_ENRICH_ERRORS'];
      tracing.instrumentation.setConfig({});
    }
  });
});
