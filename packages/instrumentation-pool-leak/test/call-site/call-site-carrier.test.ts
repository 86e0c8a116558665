// The call-site carrier on its own (#10), with the real AsyncLocalStorage context manager: a
// call site handed to run() reaches code that runs synchronously, after awaits and after timers
// inside the run, stays apart between concurrent runs, and never leaks into callbacks of the
// caller or into code after the run. Stacks here are tokens: what the carrier decides is which
// one a checkout gets; the pool tests show the real ones on real libraries.
import { context, createContextKey } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallSiteCarrier } from '../../src/call-site/call-site-carrier';
import type { CapturedStack } from '../../src/call-site/stack';
import { delay } from '../support/in-memory-resources';

/** A stand-in stack; `application: false` is a stack of library frames only. */
function site(name: string, application = true): CapturedStack {
  const callSite = application ? { functionName: name, filePath: '/app/server.js', line: 1, column: 1 } : undefined;
  return { text: `    at ${name} (/app/server.js:1:1)`, callSite, callPath: undefined, attributes: {} } as CapturedStack;
}

/** A carrier whose "live stack" is whatever the test sets, counting captures. */
function carrierWithLiveStack(): { carrier: CallSiteCarrier; live: { stack: CapturedStack | undefined; captures: number } } {
  const live = { stack: undefined as CapturedStack | undefined, captures: 0 };
  const carrier = new CallSiteCarrier(() => {
    live.captures++;
    return live.stack;
  });
  return { carrier, live };
}

const current = (carrier: CallSiteCarrier) => carrier.current(context.active())?.text;

describe('with a context manager', () => {
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  });
  afterAll(() => context.disable());

  it('run(): the site reaches synchronous code, code after awaits and timers inside the run, and nothing after it', async () => {
    const { carrier } = carrierWithLiveStack();
    const seen: (string | undefined)[] = [];
    const done = carrier.run(site('handler'), async () => {
      seen.push(current(carrier));
      await Promise.resolve();
      seen.push(current(carrier));
      await delay(1);
      seen.push(current(carrier));
    });
    seen.push(current(carrier));
    await done;
    seen.push(current(carrier));
    expect(seen).toEqual([site('handler').text, undefined, site('handler').text, site('handler').text, undefined]);
  });

  it('concurrent runs keep their own sites across awaits; nested runs take the inner one', async () => {
    const { carrier } = carrierWithLiveStack();
    const after = async (ms: number) => {
      await delay(ms);
      return current(carrier);
    };
    const [first, second] = await Promise.all([carrier.run(site('first'), () => after(5)), carrier.run(site('second'), () => after(1))]);
    expect([first, second]).toEqual([site('first').text, site('second').text]);
    const nested = carrier.run(site('outer'), () => carrier.run(site('inner'), () => current(carrier)));
    expect(nested).toBe(site('inner').text);
  });

  it('callerSide(): a callback of the caller runs outside the carried site, now and after awaits', async () => {
    const { carrier } = carrierWithLiveStack();
    const seen: (string | undefined)[] = [];
    const handler = carrier.callerSide(async (value: number) => {
      seen.push(current(carrier));
      await delay(1);
      seen.push(current(carrier));
      return value * 2;
    });
    expect(handler.length).toBe(1);
    const result = await carrier.run(site('query'), async () => {
      await Promise.resolve();
      const doubled = await handler(21);
      seen.push(current(carrier));
      return doubled;
    });
    expect(result).toBe(42);
    expect(seen).toEqual([undefined, undefined, site('query').text]);
  });

  it('callerSide(): the callback keeps the context the library runs it in, with the caller\'s own site', async () => {
    const { carrier } = carrierWithLiveStack();
    const libraryKey = createContextKey('a span the library made active');
    const seen: unknown[] = [];
    const handler = carrier.callerSide(() => {
      seen.push(context.active().getValue(libraryKey), current(carrier));
    });
    await carrier.run(site('outer'), async () => {
      const nestedHandler = carrier.callerSide(() => seen.push(current(carrier)));
      await carrier.run(site('query'), async () => {
        await Promise.resolve();
        context.with(context.active().setValue(libraryKey, 'library span'), handler);
        nestedHandler();
      });
    });
    expect(seen).toEqual(['library span', undefined, site('outer').text]);
  });

  it('remember(): the live stack when it holds an application frame; inside a run, the carried site without a capture', () => {
    const { carrier, live } = carrierWithLiveStack();
    const built = {};
    const builtInLibrary = {};
    const builtInRun = {};
    live.stack = site('buildQuery');
    carrier.remember(built, remember);
    live.stack = site('libraryOnly', false);
    carrier.remember(builtInLibrary, remember);
    const capturesBefore = live.captures;
    carrier.run(site('running'), () => carrier.remember(builtInRun, remember));
    expect(live.captures).toBe(capturesBefore);
    expect([built, builtInLibrary, builtInRun].map((object) => carrier.siteOf(object)?.text)).toEqual([
      site('buildQuery').text,
      undefined,
      site('running').text,
    ]);
    carrier.remember(built, remember);
    expect(carrier.siteOf(built)?.text).toBe(site('buildQuery').text);
    function remember() {}
  });

  it('derive(): a copy the application makes gets its own site; one a library makes inherits the source\'s', () => {
    const { carrier, live } = carrierWithLiveStack();
    const source = {};
    live.stack = site('buildBase');
    carrier.remember(source, derive);
    const appCopy = {};
    live.stack = site('cloneInHandler');
    carrier.derive(source, appCopy, derive);
    const libraryCopy = {};
    live.stack = site('libraryOnly', false);
    carrier.derive(source, libraryCopy, derive);
    expect(carrier.siteOf(appCopy)?.text).toBe(site('cloneInHandler').text);
    expect(carrier.siteOf(libraryCopy)?.text).toBe(site('buildBase').text);
    function derive() {}
  });
});

describe('without a context manager', () => {
  it('run() and runSynchronously() still carry to checkouts that start synchronously', () => {
    const { carrier } = carrierWithLiveStack();
    expect(carrier.run(site('sync'), () => current(carrier))).toBe(site('sync').text);
    expect(carrier.runSynchronously(site('adapter'), () => current(carrier))).toBe(site('adapter').text);
    expect(current(carrier)).toBeUndefined();
  });

  it('a checkout with nothing carried costs one field test: no context read before the first run', () => {
    const { carrier } = carrierWithLiveStack();
    let reads = 0;
    const active = context.active();
    const counting = Object.assign(Object.create(active) as typeof active, {
      getValue: (key: symbol) => {
        reads++;
        return active.getValue(key);
      },
    });
    expect(carrier.current(counting)).toBeUndefined();
    expect(reads).toBe(0);
  });
});
