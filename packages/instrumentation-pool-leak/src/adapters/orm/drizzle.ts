import { InstrumentationNodeModuleDefinition, InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import type { AdapterContext } from '../kit/adapter';
import { passingCallSite, rememberingCaller, ThenReadHooks, type CallSiteHook } from '../kit/call-site-hooks';
import { FreshBuilds } from '../kit/fresh-builds';
import { kitFor, type Method, type MethodHook } from '../kit/kit';

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

/** Dialect cores whose entry points (database methods and intermediate builders) are hooked. */
const ENTRY_CORES: readonly { readonly core: string; readonly prefix: string }[] = [
  { core: 'pg-core', prefix: 'Pg' },
  { core: 'mysql-core', prefix: 'MySql' },
];
/** Database methods that build a query object (or the builder that makes one). */
const DATABASE_ENTRY_POINTS = ['select', 'selectDistinct', 'selectDistinctOn', '$count', 'insert', 'update', 'delete', 'execute', 'refreshMaterializedView'];
/** Intermediate builders and the methods of theirs that make the awaitable query object. */
const BUILDER_STEPS: readonly { readonly file: string; readonly className: string; readonly methods: readonly string[] }[] = [
  { file: 'select', className: 'SelectBuilder', methods: ['from'] },
  { file: 'insert', className: 'InsertBuilder', methods: ['values', 'select'] },
  { file: 'update', className: 'UpdateBuilder', methods: ['set'] },
];
/** `db.query.users.findMany()` and `findFirst()`: relational queries. */
const RELATIONAL_ENTRY_POINTS = ['findMany', 'findFirst'];

type AnyMethod = Method<unknown, unknown[], unknown>;

/**
 * Drizzle (`drizzle-orm`): `await db.select().from(t)` runs the query from the builder's
 * `then()`, a promise job after the application's frame left the stack, so the checkout that
 * node-postgres, mysql2 or postgres.js sessions make for it would name only Drizzle.
 *
 * The call site is taken where the application builds the query: the database's entry points
 * (`db.select()`, `insert`, `update`, `delete`, `execute`, `$count`, `db.query.x.findMany()`)
 * capture it once, and the builder steps that make the awaitable object (`from`, `values`,
 * `set`) pass it on without a capture. So a plain service function that returns
 * `db.select()...` to an awaiting controller is named, not the controller. Every query object
 * runs through the `then` of a few classes, which becomes an accessor
 * ({@link ThenReadHooks}): a query read in the same synchronous run that built it keeps its
 * build site; one built earlier (at start-up, or by a builder this hook does not know, such as
 * `db.with(...)`) takes the site where it is awaited — Drizzle runs a query again on every await.
 *
 * `db.transaction(cb)` and `prepared.execute()` check out synchronously inside the
 * application's own call: the live stack already names it.
 */
export const drizzleHook: CallSiteHook = {
  name: 'drizzle-orm',
  serves: ['pg-pool', 'mysql2'],
  moduleDefinitions(context: AdapterContext) {
    const { core, file } = kitFor(context);
    const fresh = new FreshBuilds();
    const hooks = new ThenReadHooks(core, fresh);
    const thenFiles = FILES.map(
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
    /** Wraps `methods` of the class `className` that the file exports, in both builds. */
    const hookedFiles = (path: string, className: string, methods: readonly string[], wrapper: (original: AnyMethod) => AnyMethod) =>
      ['js', 'cjs'].map((extension) =>
        file(`drizzle-orm/${path}.${extension}`, SUPPORTED_VERSIONS, (exports: Record<string, unknown>, hook: MethodHook) => {
          const prototype = (exports[className] as { prototype?: Record<string, unknown> } | undefined)?.prototype;
          if (prototype === undefined) return;
          for (const name of methods) if (typeof prototype[name] === 'function') hook(prototype, name, (original) => wrapper(original as AnyMethod));
        }),
      );
    const building = (original: AnyMethod) => rememberingCaller(original, core, undefined, fresh);
    const passing = (original: AnyMethod) => passingCallSite(original, core, fresh);
    const entryFiles = ENTRY_CORES.flatMap(({ core: dialect, prefix }) => [
      ...hookedFiles(`${dialect}/db`, `${prefix}Database`, DATABASE_ENTRY_POINTS, building),
      ...hookedFiles(`${dialect}/query-builders/query`, 'RelationalQueryBuilder', RELATIONAL_ENTRY_POINTS, building),
      ...BUILDER_STEPS.flatMap((step) => hookedFiles(`${dialect}/query-builders/${step.file}`, `${prefix}${step.className}`, step.methods, passing)),
    ]);
    return [new InstrumentationNodeModuleDefinition('drizzle-orm', SUPPORTED_VERSIONS, undefined, undefined, [...thenFiles, ...entryFiles])];
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
