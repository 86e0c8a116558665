// The leak report's counting rules, on real SDK spans shaped like the instrumentation's: each
// lease counted once, checkin events grouped by who checked in, bounded tables.
import { SpanStatusCode, type Attributes, type Span } from '@opentelemetry/api';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { ATTR_POOL_CALL_PATH } from 'opentelemetry-instrumentation-pool-leak';
import { CallerNamer } from '../src/call-path';
import { LeakReportExporter, topApplicationFrame } from '../src/leak-report-exporter';

const SHUTDOWN = 'lease still open at tracer provider shutdown';

function setup() {
  const report = new LeakReportExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: report })] });
  const tracer = provider.getTracer('test');
  const site = (functionName: string, line = 10): Attributes => ({
    'code.function.name': functionName,
    'code.file.path': '/srv/app/billing.js',
    'code.line.number': line,
    'code.stacktrace': `    at ${functionName} (/srv/app/billing.js:${line}:5)\n    at handle (/srv/app/http.js:3:1)`,
    [ATTR_POOL_CALL_PATH]: `${functionName} (/srv/app/billing.js:${line}) ← handle (/srv/app/http.js:3)`,
  });
  const span = (name: string, attributes: Attributes, build: (span: Span) => void = () => {}) => {
    const started = tracer.startSpan(name, { attributes });
    build(started);
    started.end();
  };
  return {
    report,
    site,
    /** A lease that passed the threshold (leak span + event) and was still open at shutdown. */
    reportedThenOpen(functionName: string) {
      span('pg-pool leak', { ...site(functionName), 'pool.held_ms': 1600 });
      span('pg-pool checkout', { ...site(functionName), 'pool.held_ms': 5000 }, (s) => {
        s.addEvent('pool.leak.suspected', { 'pool.held_ms': 1600 });
        s.setStatus({ code: SpanStatusCode.ERROR, message: SHUTDOWN });
      });
    },
    /** Open at shutdown, never reported by the threshold (taken shortly before the end). */
    openOnly(functionName: string) {
      span('pg-pool checkout', { ...site(functionName), 'pool.held_ms': 200 }, (s) => s.setStatus({ code: SpanStatusCode.ERROR, message: SHUTDOWN }));
    },
    /** Reported by the threshold, then checked in after all. */
    reportedThenReturned(functionName: string) {
      span('pg-pool leak', { ...site(functionName), 'pool.held_ms': 1600 });
      span('pg-pool checkout', { ...site(functionName), 'pool.held_ms': 2000 }, (s) => {
        s.addEvent('pool.leak.suspected', { 'pool.held_ms': 1600 });
        s.addEvent('pool.leak.returned', { 'pool.held_ms': 2000 });
      });
    },
    checkedIn(functionName: string, events: { name: string; stack: string }[] = []) {
      span('pg-pool checkout', { ...site(functionName), 'pool.held_ms': 3 }, (s) => {
        for (const event of events) s.addEvent(event.name, { 'pool.checkin.stacktrace': event.stack });
      });
    },
    failed(message: string) {
      span('pg-pool checkout', site('getOrder'), (s) => s.setStatus({ code: SpanStatusCode.ERROR, message }));
    },
  };
}

describe('LeakReportExporter', () => {
  it('counts each lease once: leak span, open at shutdown, or both', () => {
    const { report, reportedThenOpen, openOnly, reportedThenReturned, checkedIn } = setup();
    reportedThenOpen('exportInvoice');
    reportedThenOpen('exportInvoice');
    openOnly('exportInvoice');
    reportedThenReturned('buildStatement');
    checkedIn('getOrder');

    const [first, second, ...rest] = report.leakedCallSites();
    expect(rest).toEqual([]);
    expect(first).toMatchObject({ functionName: 'exportInvoice', leaked: 3, reportedByThreshold: 2, openAtShutdown: 3, returnedLater: 0 });
    expect(first?.stack).toEqual(['at exportInvoice (/srv/app/billing.js:10:5)', 'at handle (/srv/app/http.js:3:1)']);
    expect(second).toMatchObject({ functionName: 'buildStatement', leaked: 1, reportedByThreshold: 1, openAtShutdown: 0, returnedLater: 1 });
    expect(report.format().split('\n')[0]).toBe('LEAK: exportInvoice leaked 3 pooled connections (/srv/app/billing.js:10)');
  });

  it('groups finalizer and loop-tick checkins by checkout site and checkin frame', () => {
    const { report, checkedIn } = setup();
    const finalizer = { name: 'pool.checkin.finalizer', stack: '    at releaseAbandoned (/srv/app/cursor.js:7:3)\n    at cleanup (node:internal/x:1:1)' };
    const tick = {
      name: 'pool.checkin.loop_tick',
      stack: '    at Timeout.flush (/srv/app/node_modules/lib/queue.js:1:1)\n    at new Promise (<anonymous>)\n    at flushAudits (/srv/app/audit.js:9:2)',
    };
    checkedIn('renderReport', [finalizer]);
    checkedIn('renderReport', [finalizer]);
    checkedIn('recordAudit', [tick]);

    const { checkins } = report.data();
    expect(checkins.map(({ event, takenAt, checkedInBy, count }) => [event, takenAt.functionName, checkedInBy, count])).toEqual([
      ['pool.checkin.finalizer', 'renderReport', 'releaseAbandoned (/srv/app/cursor.js:7:3)', 2],
      ['pool.checkin.loop_tick', 'recordAudit', 'flushAudits (/srv/app/audit.js:9:2)', 1],
    ]);
    expect(report.format()).toContain('No leaked connections');
    expect(report.format()).toContain('pool.checkin.finalizer 2×: taken by renderReport');
  });

  it('counts checkouts that never got a connection by reason, not as leaks', () => {
    const { report, failed } = setup();
    failed('timeout exceeded when trying to connect');
    failed('timeout exceeded when trying to connect');
    failed('Cannot use a pool after calling end on the pool');

    expect(report.leakedCallSites()).toEqual([]);
    expect([...report.data().failedCheckouts]).toEqual([
      ['timeout exceeded when trying to connect', 2],
      ['Cannot use a pool after calling end on the pool', 1],
    ]);
    expect(report.format()).toContain('3 never got a connection');
  });

  it('keeps at most 100 call sites and counts the rest', () => {
    const { report, openOnly } = setup();
    for (let i = 0; i < 130; i++) openOnly(`leaker${i}`);
    expect(report.leakedCallSites()).toHaveLength(100);
    expect(report.data().otherLeaks).toBe(30);
    expect(report.format()).toContain('... and 30 leases from further call sites');
  });

  it('says when it saw no checkouts at all', () => {
    expect(new LeakReportExporter().format().split('\n')[0]).toMatch(/^No pool checkouts were seen/);
  });
});

describe('CallerNamer', () => {
  const frames = (path: string) => path.split(' ← ');
  const helper = 'safeConnect (lib/store.js:69)';

  it('names a path by its first frame when no other path shares it', () => {
    const namer = new CallerNamer([frames('get (lib/store.js:10) ← handle (server.js:40)'), frames('set (lib/store.js:22) ← handle (server.js:41)')]);
    expect(namer.callerOf(frames('get (lib/store.js:10) ← handle (server.js:40)'))).toEqual({
      functionName: 'get',
      location: 'lib/store.js:10',
      through: [],
    });
  });

  it("names a helper's callers by the first frame they do not share, the helper being what they go through", () => {
    const set = frames(`${helper} ← set (lib/store.js:22) ← handlePost (server.js:40)`);
    const get = frames(`${helper} ← get (lib/store.js:12) ← handleGet (server.js:30)`);
    const namer = new CallerNamer([set, get]);
    expect(namer.callerOf(set)).toEqual({ functionName: 'set', location: 'lib/store.js:22', through: [helper] });
    expect(namer.callerOf(get)).toEqual({ functionName: 'get', location: 'lib/store.js:12', through: [helper] });
  });

  it('names the frame past the first fork: a caller reached from two routes is still named by itself', () => {
    const setViaPost = frames(`${helper} ← set (lib/store.js:22) ← handlePost (server.js:40)`);
    const setViaPut = frames(`${helper} ← set (lib/store.js:22) ← handlePut (server.js:50)`);
    const get = frames(`${helper} ← get (lib/store.js:12) ← handleGet (server.js:30)`);
    const namer = new CallerNamer([setViaPost, setViaPut, get, frames('other (lib/other.js:1)')]);
    expect(namer.callerOf(setViaPost)).toEqual({ functionName: 'set', location: 'lib/store.js:22', through: [helper] });
    expect(namer.callerOf(setViaPut)).toEqual({ functionName: 'set', location: 'lib/store.js:22', through: [helper] });
    expect(namer.callerOf(get)).toMatchObject({ functionName: 'get', through: [helper] });
    // Forking only further out, the first fork is deeper.
    expect(new CallerNamer([setViaPost, setViaPut]).callerOf(setViaPost)).toMatchObject({
      functionName: 'handlePost',
      through: [helper, 'set (lib/store.js:22)'],
    });
  });

  it('never names past the last frame: a path that others only extend is named by its last frame', () => {
    const onlyHelper = frames(helper);
    const namer = new CallerNamer([onlyHelper, frames(`${helper} ← set (lib/store.js:22) ← handlePost (server.js:40)`)]);
    expect(namer.callerOf(onlyHelper)).toEqual({ functionName: 'safeConnect', location: 'lib/store.js:69', through: [] });
  });

  it('names a frame without a location by its text', () => {
    expect(new CallerNamer([]).callerOf(['<no application frame>'])).toEqual({ functionName: '<no application frame>', location: undefined, through: [] });
  });
});

describe('topApplicationFrame', () => {
  it('skips Node internals, dependencies and frames without a file', () => {
    expect(topApplicationFrame('    at a (node:internal/timers:1:1)\n    at b (/x/node_modules/y/z.js:2:2)\n    at c (/app/c.ts:3:4)')).toBe(
      'c (/app/c.ts:3:4)',
    );
    expect(topApplicationFrame('    at /app/anonymous.js:1:2')).toBe('/app/anonymous.js:1:2');
    expect(topApplicationFrame('    at new Promise (<anonymous>)')).toBeUndefined();
  });
});
