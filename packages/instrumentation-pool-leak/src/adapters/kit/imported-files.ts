import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { InstrumentationModuleDefinition } from '@opentelemetry/instrumentation';

/**
 * Files inside a package that an adapter patches (`InstrumentationNodeModuleFile`: postgres.js's
 * `src/query.js` and `src/connection.js`, drizzle-orm's query builders) are patched when the
 * package is an ES module only if import-in-the-middle reports them: its `Hook` option
 * `internals: true`. `@opentelemetry/instrumentation` passes `internals: false` up to 0.211.0 and
 * `true` from 0.212.0 (open-telemetry/opentelemetry-js#6344). On the older releases an ES-module
 * package such as postgres.js (whose `import` condition loads `src/index.js`, an ES module) got
 * its entry patched and none of its files: `sql\`...\`` made no checkout span. The CommonJS
 * packages never depended on it: `require()` inside them is seen by require-in-the-middle.
 */

/** The first `@opentelemetry/instrumentation` minor (0.x) whose ES-module hook sees files inside packages. */
const FIRST_MINOR_WITH_IMPORTED_FILES = 212;

/** import-in-the-middle's `Hook` constructor, in its 1.x to 3.x shape. */
type ImportHook = new (
  modules: string[],
  options: { internals: boolean },
  onImport: (exports: unknown, name: string, baseDir?: string) => unknown,
) => unknown;

/**
 * What {@link hookImportedFiles} reads of the instrumentation base, private in the releases it
 * serves (0.200.0 to 0.211.0, whose code no longer changes), so looked up, never assumed: the
 * definitions its own hooks patch (`getModuleDefinitions()` would call `init()` again and return
 * new ones, whose patches share no state with the base's), and the handler those hooks call for
 * a loaded module or file (version check, bookkeeping for disable/enable, the file's patch).
 */
interface BaseInternals {
  readonly _modules?: unknown;
  readonly _onRequire?: unknown;
}

type OnLoad = (definition: InstrumentationModuleDefinition, exports: unknown, name: string, baseDir: string) => unknown;

/**
 * Whether the `@opentelemetry/instrumentation` of this version reports files inside ES-module
 * packages by itself. Unknown versions are taken to do so: hooking a file twice would patch it twice.
 */
export function baseHooksImportedFiles(version: string | undefined): boolean {
  const minor = /^0\.(\d+)\./.exec(version ?? '')?.[1];
  return minor === undefined || Number(minor) >= FIRST_MINOR_WITH_IMPORTED_FILES;
}

/**
 * Adds the missing import-in-the-middle hook for the files the definitions name, where the
 * installed `@opentelemetry/instrumentation` lacks it (see above); the hook hands each file to
 * the base's own handler, exactly as the newer releases do. Call once, after the base's first
 * `enable()`: import-in-the-middle replays modules imported before the hook was added.
 *
 * @returns what was done, for a debug line.
 */
export function hookImportedFiles(instrumentation: object): string {
  const version = instrumentationVersion();
  const label = `@opentelemetry/instrumentation ${version ?? '(version unknown)'}`;
  if (baseHooksImportedFiles(version)) return `${label} hooks files inside ES-module packages itself`;
  const { _modules: definitions, _onRequire: onLoad } = instrumentation as BaseInternals;
  if (!Array.isArray(definitions) || typeof onLoad !== 'function') return `${label} is not as expected; files inside ES-module packages are not hooked`;
  const Hook = importHookOfBase();
  const withFiles = (definitions as InstrumentationModuleDefinition[]).filter((definition) => definition.files.length > 0);
  for (const definition of withFiles) {
    new Hook([definition.name], { internals: true }, (exports, name, baseDir) =>
      // The package's entry is the base's own hook's to patch; files only here.
      baseDir === undefined || name === definition.name ? exports : (onLoad as OnLoad).call(instrumentation, definition, exports, name, baseDir),
    );
  }
  return `${label}: hooked the files of ${withFiles.map((definition) => definition.name).join(', ')} for ES modules`;
}

/**
 * import-in-the-middle as `@opentelemetry/instrumentation` loads it: the loader hook registers
 * modules with that copy, so only its `Hook`s are called.
 */
function importHookOfBase(): ImportHook {
  const fromBase = createRequire(require.resolve('@opentelemetry/instrumentation'));
  const loaded = fromBase('import-in-the-middle') as ImportHook | { Hook: ImportHook };
  return 'Hook' in loaded ? loaded.Hook : loaded;
}

/** Version of the `@opentelemetry/instrumentation` this package extends (its package.json, found upwards of its entry). */
function instrumentationVersion(): string | undefined {
  try {
    for (let dir = dirname(require.resolve('@opentelemetry/instrumentation')); dirname(dir) !== dir; dir = dirname(dir)) {
      let manifest: { name?: unknown; version?: unknown };
      try {
        manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as typeof manifest;
      } catch {
        continue;
      }
      if (manifest.name === '@opentelemetry/instrumentation') return typeof manifest.version === 'string' ? manifest.version : undefined;
    }
  } catch {
    // Not resolvable from here: taken as unknown.
  }
  return undefined;
}
