// The call site is this checkout's own, on a real generic-pool: the same ORM-like library path
// (11 library frames) from two application functions, from start-up and from a request, and one
// application helper used by two callers. Exact function names and lines, in both capture modes.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type * as GenericPoolModule from 'generic-pool';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { APP_LINES, LIBRARY_FRAMES, withoutStackFormatter, writeCallPathFixture } from '../support/call-path-app';
import { delay, requireLibrary, type Resource, genericPoolsOf } from '../support/in-memory-resources';
import { eventNamed } from '../support/spans';
import { setupTracing } from '../support/tracing';

const THRESHOLD_MS = 150;
const tracing = setupTracing({ leakThresholdMs: THRESHOLD_MS });
const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
const fixture = writeCallPathFixture();
const APP = fixture.appFile;
const CHECKOUT = 'generic-pool checkout';

const { pools, newPool } = genericPoolsOf(genericPool);

beforeEach(() => tracing.exporter.reset());
afterAll(async () => {
  for (const pool of pools) {
    await pool.drain();
    await pool.clear();
  }
  tracing.instrumentation.disable();
  fixture.remove();
});

/** `name (app.js:line)`: one entry of a call path in the fixture application. */
const at = (name: string, line: number) => `${name} (${APP}:${line})`;
const callPathOf = (span: ReadableSpan) => String(span.attributes['pool.call_path']);
const stackOf = (span: ReadableSpan) => String(span.attributes['code.stacktrace']);

function expectCallSite(span: ReadableSpan, functionName: string, line: number): void {
  expect(span.attributes['code.function.name']).toBe(functionName);
  expect(span.attributes['code.file.path']).toBe(APP);
  expect(span.attributes['code.line.number']).toBe(line);
}

async function leakCount(callPathStart: string): Promise<number> {
  const points = await tracing.metricPoints('pool.leak.suspected');
  return points
    .filter((point) => String(point.attributes['pool.call_path']).startsWith(callPathStart))
    .reduce((sum, point) => sum + Number(point.value), 0);
}

const MODES = [
  { mode: 'text mode (the test runner formats stacks)', run: <T>(fn: () => T): T => fn() },
  { mode: 'structured mode (nothing else formats stacks)', run: withoutStackFormatter },
];

describe.each(MODES)('$mode', ({ run }) => {
  it('one library path from two application functions: each checkout names its own function and line', async () => {
    const pool = newPool();
    const app = fixture.load<Resource>(pool, false);
    for (const query of [app.listOrders, app.listInvoices, app.listOrders]) {
      const resource = await tracing.inRequest('GET /report', () => run(query));
      await pool.release(resource);
    }
    const spans = tracing.spansNamed(CHECKOUT);
    expect(spans.map((span) => span.attributes['code.function.name']).sort()).toEqual(['listInvoices', 'listOrders', 'listOrders']);
    for (const span of spans) {
      const own = span.attributes['code.function.name'] === 'listOrders' ? 'listOrders' : 'listInvoices';
      const other = own === 'listOrders' ? 'listInvoices' : 'listOrders';
      expectCallSite(span, own, APP_LINES[own]);
      expect(callPathOf(span).startsWith(`${at(own, APP_LINES[own])} ← `)).toBe(true);
      // The library frames, then this checkout's own application frame, never the other's.
      const frames = stackOf(span).split('\n');
      expect(frames.slice(0, LIBRARY_FRAMES).every((frame) => frame.includes('node_modules'))).toBe(true);
      expect(frames[LIBRARY_FRAMES]).toContain(`${own} (${APP}:${APP_LINES[own]}:`);
      expect(stackOf(span)).not.toContain(other);
    }
  });

  it('one helper at start-up and in a request: the request checkout and its leak span name the request frames', async () => {
    const pool = newPool();
    const app = run(() => fixture.load<Resource>(pool, true));
    await pool.release(await app.startup!);
    const resource = await tracing.inRequest('POST /orders', () => run(app.handleRequest));
    await delay(THRESHOLD_MS * 3);
    await pool.release(resource);

    const [request] = tracing.spansNamed('POST /orders');
    const inRequest = (span: ReadableSpan) => span.parentSpanContext?.spanId === request!.spanContext().spanId;
    const checkouts = tracing.spansNamed(CHECKOUT);
    const startup = checkouts.find((span) => !inRequest(span))!;
    const requestCheckout = checkouts.find(inRequest)!;
    const [leak] = tracing.spansNamed('generic-pool leak').filter(inRequest);

    for (const span of [requestCheckout, leak!]) {
      expectCallSite(span, 'checkoutVia', APP_LINES.checkoutVia);
      expect(stackOf(span)).toContain(`handleRequest (${APP}:${APP_LINES.handleRequest}:`);
      expect(stackOf(span)).not.toContain(`${APP}:${APP_LINES.startup}:`);
      expect(stackOf(span)).not.toContain('Module._compile');
      expect(callPathOf(span).startsWith(`${at('checkoutVia', APP_LINES.checkoutVia)} ← ${at('handleRequest', APP_LINES.handleRequest)}`)).toBe(true);
    }
    expect(leak!.attributes['code.stacktrace']).toBe(requestCheckout.attributes['code.stacktrace']);
    expectCallSite(startup, 'checkoutVia', APP_LINES.checkoutVia);
    expect(stackOf(startup)).toContain(`${APP}:${APP_LINES.startup}:`);
    expect(callPathOf(startup)).toContain(`${at('checkoutVia', APP_LINES.checkoutVia)} ← Object.<anonymous> (${APP}:${APP_LINES.startup})`);
  });

  it('one helper, two callers: call path, exhausted-pool holders and the leak counter name the caller; code.* the helper', async () => {
    const pool = newPool({ max: 2, acquireTimeoutMillis: 100 });
    const app = fixture.load<Resource>(pool, false);
    const getPath = `${at('safeConnect', APP_LINES.safeConnect)} ← ${at('get', APP_LINES.get)}`;
    const setPath = `${at('safeConnect', APP_LINES.safeConnect)} ← ${at('set', APP_LINES.set)}`;
    const leaksBefore = [await leakCount(getPath), await leakCount(setPath)];

    const fromGet = await tracing.inRequest('GET /key', () => run(app.get));
    await delay(20);
    const fromSet = await tracing.inRequest('PUT /key', () => run(app.set));
    const starved = await tracing.inRequest('GET /other', () => pool.acquire().then(() => undefined, (error: unknown) => error));
    expect(starved).toBeInstanceOf(Error);
    await delay(THRESHOLD_MS * 2);
    await pool.release(fromGet);
    await pool.release(fromSet);

    const checkouts = tracing.spansNamed(CHECKOUT);
    const holding = checkouts.filter((span) => span.attributes['code.function.name'] === 'safeConnect');
    expect(holding.map(callPathOf).map((path) => path.slice(0, getPath.length)).sort()).toEqual([getPath, setPath].sort());
    for (const span of holding) expectCallSite(span, 'safeConnect', APP_LINES.safeConnect);

    const failed = checkouts.find((span) => span.status.code === 2)!;
    const holders = eventNamed(failed, 'pool.exhausted')!.attributes!['pool.holders'] as string[];
    expect(holders).toHaveLength(2);
    // Longest-held first: get's lease was taken first.
    expect(holders[0]!.startsWith(`${getPath} ← `)).toBe(true);
    expect(holders[1]!.startsWith(`${setPath} ← `)).toBe(true);
    expect(holders.every((holder) => / held \d+ ms/.test(holder))).toBe(true);

    expect(await leakCount(getPath)).toBe(leaksBefore[0]! + 1);
    expect(await leakCount(setPath)).toBe(leaksBefore[1]! + 1);
  });
});
