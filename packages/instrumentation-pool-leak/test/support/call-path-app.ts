// A small CommonJS application written at test time, with an "ORM-like" library under a
// node_modules folder: real module files, so V8 reports real application and library frames, and
// the line of every call is known exactly.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Library frames between the application and the pool's acquire (findAll + steps). */
export const LIBRARY_FRAMES = 11;

/** Lines of app.js (1-based), as written below. */
export const APP_LINES = {
  listOrders: 5,
  listInvoices: 8,
  checkoutVia: 11,
  handleRequest: 14,
  safeConnect: 17,
  get: 20,
  set: 23,
  startup: 26,
} as const;

const APP_SOURCE = `'use strict';
const orm = require('orm-like');
const holder = require('./pool-holder');
function listOrders() {
  return orm.findAll(holder.pool);
}
function listInvoices() {
  return orm.findAll(holder.pool);
}
function checkoutVia() {
  return orm.findAll(holder.pool);
}
function handleRequest() {
  return checkoutVia();
}
function safeConnect() {
  return holder.pool.acquire();
}
function get() {
  return safeConnect();
}
function set() {
  return safeConnect();
}
module.exports = { listOrders, listInvoices, handleRequest, get, set };
module.exports.startup = holder.checkoutAtStartup ? checkoutVia() : undefined;
`;

// An ORM's query path: ten frames of its own code before it reaches the pool.
const LIBRARY_SOURCE = `'use strict';
function step(depth, pool) {
  return depth === 0 ? pool.acquire() : step(depth - 1, pool);
}
exports.findAll = function findAll(pool) {
  return step(9, pool);
};
`;

export interface AcquiringPool {
  acquire(): Promise<unknown>;
}

export interface CallPathApp<R> {
  listOrders(): Promise<R>;
  listInvoices(): Promise<R>;
  handleRequest(): Promise<R>;
  get(): Promise<R>;
  set(): Promise<R>;
  /** The checkout app.js made while it was being loaded, if asked to. */
  readonly startup: Promise<R> | undefined;
}

export interface CallPathFixture {
  /** Absolute path of app.js. */
  readonly appFile: string;
  /** Loads app.js afresh (its module code runs again) against `pool`. */
  load<R>(pool: AcquiringPool, checkoutAtStartup: boolean): CallPathApp<R>;
  remove(): void;
}

export function writeCallPathFixture(): CallPathFixture {
  const root = mkdtempSync(join(tmpdir(), 'pool-leak-call-path-'));
  const libraryDir = join(root, 'node_modules', 'orm-like');
  mkdirSync(libraryDir, { recursive: true });
  writeFileSync(join(libraryDir, 'index.js'), LIBRARY_SOURCE);
  writeFileSync(join(root, 'pool-holder.js'), 'exports.pool = undefined;\nexports.checkoutAtStartup = false;\n');
  const appFile = join(root, 'app.js');
  writeFileSync(appFile, APP_SOURCE);
  const requireInRoot = createRequire(join(root, 'index.js'));
  return {
    appFile,
    load<R>(pool: AcquiringPool, checkoutAtStartup: boolean) {
      const holder = requireInRoot('./pool-holder') as { pool: AcquiringPool | undefined; checkoutAtStartup: boolean };
      holder.pool = pool;
      holder.checkoutAtStartup = checkoutAtStartup;
      delete requireInRoot.cache[appFile];
      return requireInRoot(appFile) as CallPathApp<R>;
    },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * Runs `fn` with no `Error.prepareStackTrace` installed (the test runner installs one to apply
 * its source maps), so the stack capture takes its structured mode.
 */
export function withoutStackFormatter<T>(fn: () => T): T {
  const error = Error as { prepareStackTrace?: unknown };
  const saved = error.prepareStackTrace;
  error.prepareStackTrace = undefined;
  try {
    return fn();
  } finally {
    error.prepareStackTrace = saved;
  }
}
