import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

/** The OpenTelemetry ESM loader hook: import-in-the-middle, as `@opentelemetry/instrumentation` ships it. */
const OTEL_LOADER_HOOK = '@opentelemetry/instrumentation/hook.mjs';

/**
 * A loader flag that already brings import-in-the-middle's hook, e.g. the
 * `--experimental-loader=@opentelemetry/instrumentation/hook.mjs` the OpenTelemetry docs
 * recommend for ES modules. Registering the hook a second time makes it emit a process warning
 * ("hook has already been initialized"), and our module list would then narrow what the user's
 * hook intercepts for their other instrumentations.
 */
const LOADER_FLAG_WITH_OTEL_HOOK = /--(?:experimental-)?loader[= ]\S*(?:@opentelemetry\/instrumentation|import-in-the-middle)\/hook\.mjs/;

export type LoaderHookOutcome = 'registered' | 'registered-in-thread' | 'already-on-command-line' | 'skipped-for-eval';

/**
 * `-e`/`--eval`, `-p`/`--print` (also combined as `-pe`): the main program is a string, not a
 * file. import-in-the-middle's in-thread hooks then fail on Node's own modules
 * (`ENOENT ... open 'module'` when the evaluated code runs, Node 24.22 with a `-r` preload), which
 * would end the host process; such a program `require`s its pools, which needs no ESM hook.
 */
const EVAL_FLAG = /^(?:-[ep]|-pe|-ep|--eval|--print)(?:=|$)/;

/** import-in-the-middle's in-thread hooks (`module.registerHooks`), where Node supports them. */
interface InThreadHooks {
  supportsSyncHooks(): boolean;
  register(options: { include: LoaderInclude[] }): void;
}

/**
 * The in-thread variant of the same hook, from the import-in-the-middle copy that our
 * `@opentelemetry/instrumentation` uses (its `Hook`s must see the registration). Node 26
 * deprecates `module.register()` with a process warning (DEP0205), and an instrumentation must
 * not make the application print warnings; `module.registerHooks()` has no such warning and no
 * loader thread. Undefined where Node's `registerHooks` cannot run it (older 22.x and 24.x).
 */
function inThreadHooks(): InThreadHooks | undefined {
  try {
    const fromInstrumentation = createRequire(require.resolve('@opentelemetry/instrumentation'));
    const hooks = fromInstrumentation('import-in-the-middle/register-hooks.mjs') as InThreadHooks;
    return hooks.supportsSyncHooks() ? hooks : undefined;
  } catch {
    return undefined;
  }
}

/** A module definition as the loader hook needs it: the package, and files inside it that are patched. */
export interface HookedModule {
  readonly name: string;
  readonly files?: readonly { readonly name: string }[];
}

/** What the loader intercepts: bare specifiers, and regular expressions on resolved file URLs. */
export type LoaderInclude = string | RegExp;

/**
 * The loader's `include` list for these definitions: each package by its bare specifier (how
 * applications import it), and each file an instrumentation patches inside a package
 * (`postgres/src/query.js`) by the end of its URL, `/node_modules/<package>/<path>` (npm, pnpm and
 * yarn layouts alike). A package's own files import each other by relative specifier, which a
 * bare name never matches: without these entries an ES-module package (postgres.js) gets its
 * entry wrapped and none of the files whose exports the adapter must replace.
 * import-in-the-middle leaves `require()` resolutions alone, so naming a CommonJS file is harmless.
 */
export function loaderIncludes(modules: readonly HookedModule[]): LoaderInclude[] {
  const names = new Set<string>();
  const files = new Map<string, RegExp>();
  for (const module of modules) {
    names.add(module.name);
    for (const file of module.files ?? []) {
      const path = file.name.split('\\').join('/');
      if (!files.has(path)) files.set(path, new RegExp(`/node_modules/${escapeRegExp(path)}$`));
    }
  }
  return [...names, ...files.values()];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Registers the ESM loader hook so that modules the application `import`s (not only those it
 * `require`s) are patched. Must run before the application's module graph loads, which a
 * `--import` or `-r` preload guarantees. The instrumentations' import-in-the-middle `Hook`s may
 * exist before it: the loader learns what to wrap from `include`, not from them.
 *
 * Only the modules in `include` ({@link loaderIncludes}) are intercepted: without it the hook
 * wraps every ES module of the application, which has broken applications in ways that have
 * nothing to do with pools (open-telemetry/opentelemetry-js#6984, nodejs/import-in-the-middle#280).
 *
 * Not for a `-e` / `-p` program ({@link EVAL_FLAG}): `'skipped-for-eval'`, nothing registered.
 */
export function registerLoaderHook(
  include: readonly LoaderInclude[],
  commandLine: { execArgv: readonly string[]; nodeOptions: string | undefined } = {
    execArgv: process.execArgv,
    nodeOptions: process.env['NODE_OPTIONS'],
  },
): LoaderHookOutcome {
  if (commandLine.execArgv.some((arg) => EVAL_FLAG.test(arg))) return 'skipped-for-eval';
  if (LOADER_FLAG_WITH_OTEL_HOOK.test(`${commandLine.execArgv.join(' ')} ${commandLine.nodeOptions ?? ''}`)) {
    return 'already-on-command-line';
  }
  const hooks = inThreadHooks();
  if (hooks !== undefined) {
    hooks.register({ include: [...include] });
    return 'registered-in-thread';
  }
  // Resolved from this file, so the hook is the one of our own @opentelemetry/instrumentation.
  // RegExps cross to the loader thread intact (structured clone).
  register(OTEL_LOADER_HOOK, pathToFileURL(__filename), { data: { include: [...include] } });
  return 'registered';
}
