// The entry-point helpers of the call-site hooks (#20) on the real lease core and SDK: a
// "library" here is an async function that awaits before it checks out, as Sequelize, TypeORM
// and MikroORM do. Which function the checkout span names is what the helpers decide.
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { carryingCaller, type CallbackArguments } from '../../../src/adapters/kit/call-site-hooks';
import { FreshBuilds } from '../../../src/adapters/kit/fresh-builds';
import { createStackCapture } from '../../../src/call-site/stack';
import { LeaseCore, type PoolProbe } from '../../../src/core/lease-core';
import { lineOf } from '../../support/source-lines';

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const pool = { name: 'entry-points' };
const probe: PoolProbe<typeof pool> = { describe: (described) => ({ library: 'generic-pool', name: described.name, maxConnections: 2 }) };

let exporter: InMemorySpanExporter;
let core: LeaseCore;

beforeEach(() => {
  exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  core = new LeaseCore({
    tracer: () => provider.getTracer('entry-points'),
    tracerProvider: () => provider,
    meter: new MeterProvider().getMeter('entry-points'),
    // The helpers' own frames are this package's: left out of every stack, as in production.
    settings: { stackCapture: createStackCapture({ maxFrames: 20, ownDirs: [fileURLToPath(new URL('../../../src/', import.meta.url))] }) },
  });
});
afterEach(() => vi.restoreAllMocks());

/** The library's checkout, made after an await of its own: no application frame is live then. */
async function checkOutLater(): Promise<void> {
  await Promise.resolve();
  const lease = core.checkout(pool, probe, checkOutLater)!;
  lease.granted();
  lease.checkin(false, checkOutLater);
}
const libraryQuery = carryingCaller(checkOutLater, () => core);

/** The library's entry point that calls another of its entry points (`findOne` → `findAll`). */
const libraryFindOne = carryingCaller(async function findOne(): Promise<void> {
  await libraryQuery();
}, () => core);

const checkouts = (): ReadableSpan[] => exporter.getFinishedSpans().filter((span) => span.name === 'generic-pool checkout');

describe('carryingCaller', () => {
  it('a plain function returns the library call, an async controller awaits it: the checkout names the plain function', async () => {
    function getUsers() {
      return libraryQuery(); // line:kit-service
    }
    async function controller() {
      return await getUsers();
    }
    await controller();
    expect(checkouts().map((span) => span.attributes['code.function.name'])).toEqual(['getUsers']);
    expect(checkouts()[0]!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'kit-service'));
  });

  it('an entry point the library calls inside a carried call captures nothing: one capture, the outer call site', async () => {
    const captures = vi.spyOn(core, 'captureCallSite');
    function findAda() {
      return libraryFindOne(); // line:kit-outer
    }
    await findAda();
    expect(captures).toHaveBeenCalledTimes(1);
    expect(checkouts()[0]!.attributes['code.line.number']).toBe(lineOf(import.meta.url, 'kit-outer'));
  });

  it('the call site stays with its call: a checkout after it, from another function, names that function', async () => {
    /** The pool's own acquire, called directly: its caller is the call site. */
    function acquire() {
      return core.checkout(pool, probe, acquire)!;
    }
    async function directCheckout() {
      const lease = acquire();
      lease.granted();
      lease.checkin(false, acquire);
    }
    function getUsers() {
      return libraryQuery();
    }
    await getUsers();
    await directCheckout();
    expect(checkouts().map((span) => span.attributes['code.function.name'])).toEqual(['getUsers', 'directCheckout']);
  });

  const argumentsSeen = async (callbacks: CallbackArguments, args: unknown[]): Promise<unknown[]> => {
    let seen: unknown[] = [];
    const entry = carryingCaller(async (...received: unknown[]) => {
      seen = received;
      await checkOutLater();
    }, () => core, callbacks);
    await entry(...args);
    return seen;
  };

  it("callbacks 'none': entity classes and other function arguments reach the library as themselves", async () => {
    class User {}
    const seen = await argumentsSeen('none', [User, { where: {} }]);
    expect(seen[0]).toBe(User);
  });

  it("callbacks 'last': only the last argument (a transaction's body) runs on the caller's side; model classes stay themselves", async () => {
    class Order {}
    const body = () => 'body result';
    const seen = await argumentsSeen('last', [Order, body]);
    expect(seen[0]).toBe(Order);
    expect(seen[1]).not.toBe(body);
    expect((seen[1] as () => string)()).toBe('body result');
  });
});

describe('FreshBuilds', () => {
  it('an object is fresh in the synchronous run that built it, and no longer once a microtask ran', async () => {
    const fresh = new FreshBuilds();
    const query = {};
    fresh.add(query);
    expect(fresh.has(query)).toBe(true);
    await Promise.resolve();
    expect(fresh.has(query)).toBe(false);
    const next = {};
    fresh.add(next);
    expect(fresh.has(next)).toBe(true);
  });
});
