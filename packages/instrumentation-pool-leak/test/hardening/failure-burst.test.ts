// The database goes away: a pool with room for every request opens a connection per checkout
// and each connect is refused. None of these checkouts queued, so each span started at its
// request; more of them fail in one turn of the loop than the failure queue ends at once, and
// the rest must still end on later turns, each with its own error (real pg-pool, a real refused
// TCP port on loopback).
import { createServer } from 'node:net';
import { SpanStatusCode } from '@opentelemetry/api';
import { afterAll, describe, expect, it } from 'vitest';
import type { LeaseCore } from '../../src/core/lease-core';
import { eventNamed } from '../support/spans';
import { setupTracing } from '../support/tracing';
import { loadPg } from '../support/pg';

const tracing = setupTracing();
const { Pool } = loadPg();
const CHECKOUT = 'pg-pool checkout';
/** More than the failure queue ends in the turn they fail in (32). */
const CHECKOUTS = 150;
const core = (): LeaseCore => (tracing.instrumentation as unknown as { core: LeaseCore }).core;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

afterAll(() => tracing.instrumentation.disable());

/** A loopback port that was just free: connecting to it is refused. */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP address for the probe server');
  return address.port;
}

describe('checkouts that fail in one burst without queueing', () => {
  it('ends every checkout span, with ERROR status and its own exception', async () => {
    const pool = new Pool({ host: '127.0.0.1', port: await refusedPort(), user: 'nobody', database: 'none', max: CHECKOUTS });
    tracing.exporter.reset();
    const errors = await Promise.all(
      Array.from({ length: CHECKOUTS }, () =>
        tracing.inRequest('request', () => pool.connect()).then(
          () => undefined,
          (error: NodeJS.ErrnoException) => error,
        ),
      ),
    );
    expect(errors.map((error) => error?.code)).toEqual(Array(CHECKOUTS).fill('ECONNREFUSED'));
    // The refusals came in one turn: past the first 32, their spans wait in the failure queue.
    expect(core().queuedFailureCount).toBeGreaterThan(0);
    let turns = 0;
    while (core().queuedFailureCount > 0 && turns < 1000) {
      await nextTurn();
      turns++;
    }
    const spans = tracing.spansNamed(CHECKOUT);
    expect(spans).toHaveLength(CHECKOUTS);
    for (const span of spans) {
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(span.attributes['error.type']).toBe('ECONNREFUSED');
      expect(eventNamed(span, 'exception')?.attributes?.['exception.message']).toContain('ECONNREFUSED');
    }
    // Each span ended under its own request, once.
    expect(new Set(spans.map((span) => span.parentSpanContext?.spanId)).size).toBe(CHECKOUTS);
    await pool.end();
  });
});
