import { InstrumentationNodeModuleDefinition, InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import type { AdapterContext } from '../kit/adapter';
import { ThenReadHooks, type CallSiteHook } from '../kit/call-site-hooks';

/** Drizzle releases whose query objects run from `then()` as below (0.29 up to the 1.0 betas, excluded). */
const SUPPORTED_VERSIONS = ['>=0.29.0 <1'];
/** Dialect cores whose select (mixin) and count builders carry a `then` of their own. */
const DIALECT_CORES = ['pg-core', 'mysql-core', 'sqlite-core', 'singlestore-core', 'gel-core'];
/**
 * Files that define a `then`: `QueryPromise`, the base of every awaitable query object (insert,
 * update, delete, raw `db.execute()`, relational `db.query.x.findMany()`, ...); the select
 * builders, which copy `QueryPromise`'s methods onto themselves (`applyMixins`) when loaded; the
 * `$count()` builders. Each in its ES-module (`.js`) and CommonJS (`.cjs`) build.
 */
const FILES = [
  'query-promise',
  ...DIALECT_CORES.flatMap((core) => [`${core}/query-builders/select`, `${core}/query-builders/count`]),
].flatMap((file) => [`drizzle-orm/${file}.js`, `drizzle-orm/${file}.cjs`]);

/**
 * Drizzle (`drizzle-orm`): `await db.select().from(t)` runs the query from the builder's
 * `then()`, a promise job after the application's frame left the stack, so the checkout that
 * node-postgres, mysql2 or postgres.js sessions make for it would name only Drizzle. Drizzle
 * builds its query objects in dozens of builder methods across dialects, but every one runs
 * through the `then` of a few classes, and `await` reads that `then` in the application's
 * frame: those `then`s become accessors that remember the reader's call site
 * ({@link ThenReadHooks}). Covers every session (driver) at once; the call site is where the
 * query is awaited (or its `then`/`catch`/`finally` called), which for a query built and
 * awaited in one statement is the line that built it.
 *
 * `db.transaction(cb)` and `prepared.execute()` check out synchronously inside the
 * application's own call: the live stack already names it.
 */
export const drizzleHook: CallSiteHook = {
  name: 'drizzle-orm',
  serves: ['pg-pool', 'mysql2'],
  moduleDefinitions({ core }: AdapterContext) {
    const hooks = new ThenReadHooks(core);
    const files = FILES.map(
      (name) =>
        new InstrumentationNodeModuleFile(
          name,
          SUPPORTED_VERSIONS,
          (moduleExports: object) => {
            for (const prototype of thenableClassPrototypes(moduleExports)) hooks.patch(prototype);
            return moduleExports;
          },
          (moduleExports?: object) => {
            if (moduleExports === undefined) return;
            for (const prototype of thenableClassPrototypes(moduleExports)) hooks.unpatch(prototype);
          },
        ),
    );
    return [new InstrumentationNodeModuleDefinition('drizzle-orm', SUPPORTED_VERSIONS, undefined, undefined, files)];
  },
};

/** Prototypes of the classes a module exports that hold a `then` of their own. */
function thenableClassPrototypes(moduleExports: object): object[] {
  const prototypes: object[] = [];
  for (const name of Object.keys(moduleExports)) {
    const exported: unknown = (moduleExports as Record<string, unknown>)[name];
    if (typeof exported !== 'function') continue;
    const prototype: unknown = (exported as { prototype?: unknown }).prototype;
    if (typeof prototype === 'object' && prototype !== null && Object.prototype.hasOwnProperty.call(prototype, 'then')) {
      prototypes.push(prototype);
    }
  }
  return prototypes;
}
