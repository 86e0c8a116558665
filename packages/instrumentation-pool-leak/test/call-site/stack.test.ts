import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCapturedStack, createStackCapture, FIRST_WINDOW_FRAMES, isApplicationFrame, parseFrame } from '../../src/call-site/stack';
import { withoutStackFormatter } from '../support/call-path-app';

const OWN = `${sep}opt${sep}app${sep}node_modules${sep}opentelemetry-instrumentation-pool-leak${sep}build${sep}src${sep}`;
/** The two ways a capture reads frames: parsing the formatted text, or V8's frame objects. */
const READ_MODES = [
  { mode: 'text mode', run: <T>(fn: () => T): T => fn() },
  { mode: 'structured mode', run: withoutStackFormatter },
];

describe('parseFrame', () => {
  it.each([
    ['    at handler (/srv/app/routes.js:10:5)', 'handler', '/srv/app/routes.js', 10, 5],
    ['    at async Object.exportInvoice (/srv/app/service.js:3:7)', 'Object.exportInvoice', '/srv/app/service.js', 3, 7],
    ['    at new Repository (/srv/app/repo.js:1:2)', 'new Repository', '/srv/app/repo.js', 1, 2],
    ['    at /srv/app/index.js:4:9', undefined, '/srv/app/index.js', 4, 9],
    ['    at file:///srv/app/main.mjs:8:1', undefined, '/srv/app/main.mjs', 8, 1],
    ['    at run (file:///srv/app/main.mjs:8:1)', 'run', '/srv/app/main.mjs', 8, 1],
    // An anonymous async frame: `async` marks the frame, it is neither a name nor part of the file.
    ['    at async /app/otel.js:23:18', undefined, '/app/otel.js', 23, 18],
    ['    at async file:///app/main.mjs:2:3', undefined, '/app/main.mjs', 2, 3],
    ['    at async handle (/app/server.js:40:5)', 'handle', '/app/server.js', 40, 5],
    ['    at Object.<anonymous> [as run] (/app/a b/x.js:1:2)', 'Object.<anonymous> [as run]', '/app/a b/x.js', 1, 2],
    ['    at get (C:\\app\\server.js:7:3)', 'get', 'C:\\app\\server.js', 7, 3],
    ['    at C:\\app\\node_modules\\pg\\x.js:1:2', undefined, 'C:\\app\\node_modules\\pg\\x.js', 1, 2],
  ])('%s', (line, functionName, filePath, lineNumber, column) => {
    expect(parseFrame(line)).toEqual({ functionName, filePath, line: lineNumber, column });
  });

  it.each([
    ['    at Array.map (<anonymous>)', 'Array.map'],
    ['    at new Promise (<anonymous>)', 'new Promise'],
    ['    at async Promise.all (index 0)', 'Promise.all'],
    // Code from eval lives in no file: the location names where eval was called, not a file line.
    ['    at eval (eval at f (/app/x.js:1:2), <anonymous>:1:1)', 'eval'],
    ['    at Object.eval [as fn] (eval at run (eval at f (/app/x.js:1:2)), <anonymous>:3:4)', 'Object.eval [as fn]'],
    ['    at eval (eval at f (/app/x.js:1:2), <anonymous>:1:1)', 'eval'],
  ])('no file location: %s', (line, functionName) => {
    expect(parseFrame(line)).toEqual({ functionName, filePath: undefined, line: 0, column: 0 });
  });

  it('non-frame lines', () => {
    expect(parseFrame('Error: boom')).toBeUndefined();
    expect(parseFrame('    attempt (x.js:1:1)')).toBeUndefined();
  });
});

describe('isApplicationFrame', () => {
  it('rejects node internals and dependencies', () => {
    expect(isApplicationFrame(parseFrame('    at f (node:internal/process/task_queues:95:5)')!)).toBe(false);
    expect(isApplicationFrame(parseFrame('    at f (/srv/app/node_modules/pg-pool/index.js:1:1)')!)).toBe(false);
    expect(isApplicationFrame(parseFrame('    at f (/srv/app/src/db.js:1:1)')!)).toBe(true);
    expect(isApplicationFrame(parseFrame('    at new Promise (<anonymous>)')!)).toBe(false);
    expect(isApplicationFrame(parseFrame('    at eval (eval at f (/app/x.js:1:2), <anonymous>:1:1)')!)).toBe(false);
  });

  it('Windows paths: node_modules is a library, the rest is the application', () => {
    expect(isApplicationFrame(parseFrame('    at C:\\app\\node_modules\\pg\\x.js:1:2')!)).toBe(false);
    expect(isApplicationFrame(parseFrame('    at handle (C:\\app\\server.js:3:4)')!)).toBe(true);
    expect(isApplicationFrame(parseFrame('    at file:///C:/app/node_modules/pg/x.js:1:2')!)).toBe(false);
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

  it('no application frame: a stack but no code.* call-site attributes and no call path', () => {
    const captured = buildCapturedStack('Error\n    at x (/a/node_modules/b/c.js:1:1)', 50, 8192, [OWN]);
    expect(captured.callSite).toBeUndefined();
    expect(captured.callPath).toBeUndefined();
    expect(Object.keys(captured.attributes)).toEqual(['code.stacktrace']);
  });

  it('call path: up to 3 application frames, innermost first, relative to the working directory when inside it', () => {
    const helperWrapped = [
      'Error',
      '    at Pool.connect (/srv/app/node_modules/pg-pool/index.js:45:11)',
      '    at safeConnect (/srv/app/lib/store.js:69:17)',
      '    at async /srv/app/lib/cache.js:5:3',
      '    at processTicksAndRejections (node:internal/process/task_queues:105:5)',
      '    at async set (/srv/app/lib/store.js:22:5)',
      '    at handlePost (/srv/other/server.js:40:9)',
    ].join('\n');
    const captured = buildCapturedStack(helperWrapped, 50, 8192, [OWN], '/srv/app');
    expect(captured.callPath).toBe('safeConnect (lib/store.js:69) ← <anonymous> (lib/cache.js:5) ← set (lib/store.js:22)');
    expect(captured.attributes['pool.call_path']).toBe(captured.callPath);
    // code.* is the first application frame, with its absolute path.
    expect(captured.attributes['code.function.name']).toBe('safeConnect');
    expect(captured.attributes['code.file.path']).toBe('/srv/app/lib/store.js');
    expect(buildCapturedStack(helperWrapped, 50, 8192, [OWN], '/srv/other').callPath).toBe(
      'safeConnect (/srv/app/lib/store.js:69) ← <anonymous> (/srv/app/lib/cache.js:5) ← set (/srv/app/lib/store.js:22)',
    );
    // '/srv/ap' is not a directory holding /srv/app: no half-directory prefix is cut.
    expect(buildCapturedStack(helperWrapped, 50, 8192, [OWN], '/srv/ap').callPath).toMatch(/^safeConnect \(\/srv\/app\/lib\/store.js:69\)/);
  });

  it('the attributes are frozen: shared by every checkout with the same frames, changed by none', () => {
    expect(Object.isFrozen(buildCapturedStack(text, 50, 8192, [OWN]).attributes)).toBe(true);
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
    const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN] });
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

  it('an application prepareStackTrace is honoured: its text is what is parsed (source-mapped stacks)', () => {
    const saved = Error.prepareStackTrace;
    Error.prepareStackTrace = () => 'Error\n    at mapped (/srv/app/src/orders.ts:12:3)\n    at route (/srv/app/src/server.ts:4:1)';
    try {
      const captured = boundary(createStackCapture({ maxFrames: 50, ownDirs: [OWN] }))!;
      expect(captured.callPath).toBe('mapped (/srv/app/src/orders.ts:12) ← route (/srv/app/src/server.ts:4)');
    } finally {
      Error.prepareStackTrace = saved;
    }
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

  describe.each(READ_MODES)('windows, $mode', ({ run }) => {
    function atDepth<T>(depth: number, fn: () => T): T {
      return depth === 0 ? fn() : atDepth(depth - 1, fn);
    }

    it('a caller deep in application code: only the first window is captured, every frame its own', () => {
      const capture = createStackCapture({ maxFrames: 25, ownDirs: [OWN] });
      function deepCaller() {
        return capture.capture(deepCaller);
      }
      const captured = run(() => atDepth(30, deepCaller))!;
      expect(captured.text.split('\n')).toHaveLength(FIRST_WINDOW_FRAMES);
      expect(captured.callPath).toMatch(/^atDepth \(.*stack.test.ts:\d+\) ← atDepth \(.*\) ← atDepth \(.*\)$/);
    });

    it('fullStacks captures up to the frame cap', () => {
      const capture = createStackCapture({ maxFrames: 25, ownDirs: [OWN], fullStacks: true });
      function deepCaller() {
        return capture.capture(deepCaller);
      }
      expect(run(() => atDepth(30, deepCaller))!.text.split('\n')).toHaveLength(25);
    });
  });

  describe('exact in structured mode: what differs between two calls at one code position', () => {
    it('the receiver type and a closure-own function name are part of the cached record', () => {
      const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN] });
      class Repository {
        find() {
          return capture.capture(Repository.prototype.find);
        }
      }
      class OrdersRepository extends Repository {}
      class InvoicesRepository extends Repository {}
      function shared(this: Repository) {
        return this.find();
      }
      const orders = withoutStackFormatter(() => shared.call(new OrdersRepository()))!;
      const invoices = withoutStackFormatter(() => shared.call(new InvoicesRepository()))!;
      expect(orders).not.toBe(invoices);
      expect(orders.text.split('\n')[0]).toMatch(/^    at OrdersRepository\.shared \(/);
      expect(invoices.text.split('\n')[0]).toMatch(/^    at InvoicesRepository\.shared \(/);

      function acquire() {
        return capture.capture(acquire);
      }
      const make = () =>
        function handler() {
          return acquire();
        };
      const plain = make();
      const renamed = make();
      Object.defineProperty(renamed, 'name', { value: 'renamedHandler' });
      expect(withoutStackFormatter(plain)?.callSite?.functionName).toBe('handler');
      expect(withoutStackFormatter(renamed)?.callSite?.functionName).toBe('renamedHandler');
    });
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

    it.each(READ_MODES)('$mode: one library frame under a deep application stack (pool.query) widens to 6 frames, not 16', ({ run }) => {
      const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN] });
      function acquireEntry() {
        return capture.capture(acquireEntry);
      }
      function nested<T>(depth: number, fn: () => T): T {
        return depth === 0 ? fn() : nested(depth - 1, fn);
      }
      // oneCall (library) ← the arrow (app) ← nested (app): the first window ends on an application frame.
      const captured = run(() => nested(20, () => library.oneCall(acquireEntry)))!;
      const lines = captured.text.split('\n');
      expect(lines).toHaveLength(6);
      expect(lines[0]).toContain(`${sep}node_modules${sep}fake-pool-lib`);
      expect(captured.callPath!.split(' ← ')).toHaveLength(3);
      expect(lines.slice(1).every((line) => line.includes('stack.test.ts'))).toBe(true);
    });

    it.each(READ_MODES)('$mode: a window ending on an application frame is widened, the call path may go on past it', ({ run }) => {
      const capture = createStackCapture({ maxFrames: 50, ownDirs: [OWN] });
      function acquireEntry() {
        return capture.capture(acquireEntry);
      }
      // helper (app) ← oneCall (library) ← route (app): the first window (3 frames) ends on route.
      const helper = () => acquireEntry();
      function route() {
        return library.oneCall(helper);
      }
      const captured = run(route)!;
      const path = captured.callPath!.split(' ← ');
      expect(path).toHaveLength(3);
      expect(path[0]).toMatch(/^helper \(/);
      expect(path[1]).toMatch(/^route \(/);
    });
  });
});
