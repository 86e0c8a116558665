import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCapturedStack, createStackCapture, isApplicationFrame, parseFrame } from '../src/stack';

const OWN = `${sep}opt${sep}app${sep}node_modules${sep}opentelemetry-instrumentation-pool-leak${sep}build${sep}src${sep}`;

describe('parseFrame', () => {
  it.each([
    ['    at handler (/srv/app/routes.js:10:5)', 'handler', '/srv/app/routes.js', 10, 5],
    ['    at async Object.exportInvoice (/srv/app/service.js:3:7)', 'Object.exportInvoice', '/srv/app/service.js', 3, 7],
    ['    at new Repository (/srv/app/repo.js:1:2)', 'new Repository', '/srv/app/repo.js', 1, 2],
    ['    at /srv/app/index.js:4:9', undefined, '/srv/app/index.js', 4, 9],
    ['    at file:///srv/app/main.mjs:8:1', undefined, '/srv/app/main.mjs', 8, 1],
    ['    at run (file:///srv/app/main.mjs:8:1)', 'run', '/srv/app/main.mjs', 8, 1],
  ])('%s', (line, functionName, filePath, lineNumber, column) => {
    expect(parseFrame(line)).toEqual({ functionName, filePath, line: lineNumber, column });
  });

  it('frames without a location, and non-frame lines', () => {
    expect(parseFrame('    at Array.map (<anonymous>)')).toEqual({ functionName: 'Array.map', filePath: undefined, line: 0, column: 0 });
    expect(parseFrame('Error: boom')).toBeUndefined();
  });
});

describe('isApplicationFrame', () => {
  it('rejects node internals and dependencies', () => {
    expect(isApplicationFrame(parseFrame('    at f (node:internal/process/task_queues:95:5)')!)).toBe(false);
    expect(isApplicationFrame(parseFrame('    at f (/srv/app/node_modules/pg-pool/index.js:1:1)')!)).toBe(false);
    expect(isApplicationFrame(parseFrame('    at f (/srv/app/src/db.js:1:1)')!)).toBe(true);
  });
});

describe('buildCapturedStack', () => {
  const text = [
    'Error',
    `    at connect (${OWN}adapters${sep}pg-pool.js:50:20)`,
    '    at Pool.query (/srv/app/node_modules/pg-pool/index.js:440:10)',
    '    at listOrders (/srv/app/src/orders.js:12:16)',
    '    at handle (/srv/app/src/server.js:30:3)',
  ].join('\n');

  it('drops our frames, keeps dependencies in the stack, picks the first application frame', () => {
    const captured = buildCapturedStack(text, 50, 8192, [OWN]);
    expect(captured.text.split('\n')).toEqual([
      '    at Pool.query (/srv/app/node_modules/pg-pool/index.js:440:10)',
      '    at listOrders (/srv/app/src/orders.js:12:16)',
      '    at handle (/srv/app/src/server.js:30:3)',
    ]);
    expect(captured.callSite).toEqual({ functionName: 'listOrders', filePath: '/srv/app/src/orders.js', line: 12, column: 16 });
    expect(captured.attributes).toMatchObject({
      'code.function.name': 'listOrders',
      'code.file.path': '/srv/app/src/orders.js',
      'code.line.number': 12,
      'code.column.number': 16,
    });
  });

  it('drops frames of every own directory: compiled code and its source-mapped sources', () => {
    const sources = `${sep}opt${sep}app${sep}node_modules${sep}opentelemetry-instrumentation-pool-leak${sep}src${sep}`;
    const mapped = `Error\n    at cleanupUnderMarker (${sources}checkin-context.ts:31:20)\n    at release (${OWN}adapters${sep}pg-pool.js:9:1)\n    at sweep (/srv/app/src/sweeper.js:4:2)`;
    const captured = buildCapturedStack(mapped, 50, 8192, [OWN, sources]);
    expect(captured.text).toBe('    at sweep (/srv/app/src/sweeper.js:4:2)');
    expect(captured.callSite?.functionName).toBe('sweep');
  });

  it('caps by frames and by characters, at a line end', () => {
    expect(buildCapturedStack(text, 2, 8192, [OWN]).text.split('\n')).toHaveLength(2);
    const short = buildCapturedStack(text, 50, 100, [OWN]).text;
    expect(short.length).toBeLessThanOrEqual(100);
    expect(short.split('\n').every((line) => line.trimStart().startsWith('at '))).toBe(true);
  });

  it('no application frame: a stack but no code.* call-site attributes', () => {
    const captured = buildCapturedStack('Error\n    at x (/a/node_modules/b/c.js:1:1)', 50, 8192, [OWN]);
    expect(captured.callSite).toBeUndefined();
    expect(Object.keys(captured.attributes)).toEqual(['code.stacktrace']);
  });
});

describe('createStackCapture', () => {
  function boundary(capture: ReturnType<typeof createStackCapture>) {
    return capture.capture(boundary);
  }

  it('the boundary function and everything above it are left out', () => {
    const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN] });
    function callerOfBoundary() {
      return boundary(capture);
    }
    const captured = callerOfBoundary()!;
    expect(captured.text.split('\n')[0]).toContain('callerOfBoundary');
    expect(captured.callSite?.functionName).toBe('callerOfBoundary');
  });

  it('one call site is formatted once and then served from the cache', () => {
    const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN], keyFrames: 4 });
    const results = [];
    for (let i = 0; i < 3; i++) results.push(boundary(capture));
    expect(results[1]).toBe(results[0]);
    expect(results[2]).toBe(results[0]);
  });

  it('different call sites get different stacks; the cache stays bounded', () => {
    const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN], cacheSize: 2 });
    const siteA = () => boundary(capture);
    const siteB = () => boundary(capture);
    const siteC = () => boundary(capture);
    const a = siteA();
    expect(siteB()).not.toBe(a);
    siteC();
    // siteA was evicted (cache of 2): captured again, a new object for the same call site.
    const again = siteA();
    expect(again).not.toBe(a);
    expect(again?.callSite).toEqual(a?.callSite);
  });

  it('an application prepareStackTrace that returns no string yields no stack', () => {
    const saved = Error.prepareStackTrace;
    Error.prepareStackTrace = () => ({ custom: true });
    try {
      expect(boundary(createStackCapture({ maxFrames: 50, ownDirs: [OWN] }))).toBeUndefined();
    } finally {
      Error.prepareStackTrace = saved;
    }
  });

  describe('through library code (frames under node_modules)', () => {
    // A real module file under a node_modules folder, so V8 reports a dependency's frames.
    const root = mkdtempSync(join(tmpdir(), 'pool-leak-stack-'));
    const libraryDir = join(root, 'node_modules', 'fake-pool-lib');
    mkdirSync(libraryDir, { recursive: true });
    writeFileSync(
      join(libraryDir, 'index.js'),
      'exports.oneCall = (fn) => fn();\nexports.twoCalls = (fn) => exports.oneCall(fn);\nexports.fourCalls = (fn) => exports.twoCalls(() => exports.twoCalls(fn));\n',
    );
    const library = createRequire(join(root, 'app.js'))('fake-pool-lib') as {
      oneCall<T>(fn: () => T): T;
      fourCalls<T>(fn: () => T): T;
    };
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    it('one library frame (pool.query, pool.use): the short key holds the application caller', () => {
      const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN] });
      function acquireEntry() {
        return capture.capture(acquireEntry);
      }
      function ordersRoute() {
        return library.oneCall(acquireEntry);
      }
      function invoicesRoute() {
        return library.oneCall(acquireEntry);
      }
      expect(ordersRoute()!.callSite?.functionName).toBe('ordersRoute');
      expect(invoicesRoute()!.callSite?.functionName).toBe('invoicesRoute');
    });

    it('several library frames: the long key reaches the application, each caller keeps its own call site', () => {
      const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN] });
      // The pool's entry point, called straight from deeper library code (like a query builder).
      function acquireEntry() {
        return capture.capture(acquireEntry);
      }
      function reportsRoute() {
        return library.fourCalls(acquireEntry);
      }
      function exportsRoute() {
        return library.fourCalls(acquireEntry);
      }
      const reports = reportsRoute()!;
      const exportsStack = exportsRoute()!;
      expect(reports).not.toBe(exportsStack);
      expect(reports.callSite?.functionName).toBe('reportsRoute');
      expect(exportsStack.callSite?.functionName).toBe('exportsRoute');
      expect(reports.text.split('\n')[0]).toContain(`${sep}node_modules${sep}fake-pool-lib`);
    });
  });
});
