// The instrumentations that give checkout spans a request around them when the register entry
// starts the SDK: the application's `@opentelemetry/auto-instrumentations-node` when installed,
// else its `@opentelemetry/instrumentation-http`, else nothing and a hint. Both are resolved from
// the application (its main module and working directory), never from this package: what counts
// is what the user installed, and the copy they installed uses their `@opentelemetry/api`.
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { instrumentationNames, SHORT_NAME, type Env } from './env';

export const AUTO_BUNDLE = '@opentelemetry/auto-instrumentations-node';
export const HTTP_INSTRUMENTATION = '@opentelemetry/instrumentation-http';
const ENABLED_VARIABLE = 'OTEL_NODE_ENABLED_INSTRUMENTATIONS';
const DISABLED_VARIABLE = 'OTEL_NODE_DISABLED_INSTRUMENTATIONS';
const LIST_VARIABLES = [ENABLED_VARIABLE, DISABLED_VARIABLE] as const;

/** Loads a package the way the application would, or returns undefined when it cannot resolve it. */
export type AppLoader = (name: string) => unknown;

export interface RequestParents {
  readonly instrumentations: Instrumentation[];
  /** Which set-up was chosen, for the debug log and the tests. */
  readonly source: 'auto-instrumentations-node' | 'instrumentation-http' | 'none';
  /** Set when neither package is installed: what to install for request parents. */
  readonly hint?: string;
}

interface AutoBundle {
  getNodeAutoInstrumentations(config?: Record<string, unknown>): Instrumentation[];
}
interface HttpModule {
  HttpInstrumentation: new () => Instrumentation;
}

/**
 * The instrumentations for request parents, created now (after the SDK installed the diag
 * logger, so their warnings are seen). `ownName` is this instrumentation's name: an entry of
 * the bundle with that name is left out, so it is never registered twice.
 */
export function requestParents(ownName: string, load: AppLoader = loadFromApplication, env: Env = process.env): RequestParents {
  const enabled = instrumentationNames(env[ENABLED_VARIABLE]);
  // The user named only pool-leak: they asked for nothing else, and need no hint either.
  if (enabled.length > 0 && enabled.every((name) => name === SHORT_NAME)) return { instrumentations: [], source: 'none' };

  const bundle = load(AUTO_BUNDLE) as Partial<AutoBundle> | undefined;
  if (typeof bundle?.getNodeAutoInstrumentations === 'function') {
    const getAll = bundle.getNodeAutoInstrumentations.bind(bundle);
    const instrumentations: Instrumentation[] = [];
    for (const instrumentation of withoutOwnName(env, () => getAll())) {
      // Created enabled (patching) by the bundle: a second copy of ours is switched off again.
      if (instrumentation.instrumentationName === ownName) instrumentation.disable();
      else instrumentations.push(instrumentation);
    }
    return { instrumentations, source: 'auto-instrumentations-node' };
  }

  const http = load(HTTP_INSTRUMENTATION) as Partial<HttpModule> | undefined;
  if (typeof http?.HttpInstrumentation === 'function') {
    const selected = (enabled.length === 0 || enabled.includes('http')) && !instrumentationNames(env[DISABLED_VARIABLE]).includes('http');
    return { instrumentations: selected ? [new http.HttpInstrumentation()] : [], source: 'instrumentation-http' };
  }

  return {
    instrumentations: [],
    source: 'none',
    hint:
      `checkout spans have no request around them: install ${AUTO_BUNDLE} ` +
      `(or at least ${HTTP_INSTRUMENTATION}) in the application for request parents.`,
  };
}

/**
 * Runs `read` with the `OTEL_NODE_*_INSTRUMENTATIONS` lists of `env` in `process.env` (where the
 * bundle reads them), `pool-leak` taken out: the bundle reports every name it does not know as
 * an error ("Provided instrumentation name ... not found"), which ours is to it. `process.env` is
 * restored before returning; this runs during the preload, before any application code.
 */
function withoutOwnName<T>(env: Env, read: () => T): T {
  const saved = LIST_VARIABLES.map((name) => [name, process.env[name]] as const);
  try {
    for (const name of LIST_VARIABLES) {
      const others = instrumentationNames(env[name]).filter((entry) => entry !== SHORT_NAME);
      if (others.length === 0) delete process.env[name];
      else process.env[name] = others.join(',');
    }
    return read();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/**
 * Requires `name` from the application's main module directory, else from the working
 * directory; undefined when neither resolves it. A package that is found but fails to load
 * throws: that is a broken install the caller reports.
 */
export function loadFromApplication(name: string): unknown {
  for (const base of applicationBases()) {
    const requireFromApp = createRequire(join(base, 'noop.js'));
    let resolved: string;
    try {
      resolved = requireFromApp.resolve(name);
    } catch {
      continue;
    }
    return requireFromApp(resolved);
  }
  return undefined;
}

function applicationBases(): string[] {
  const main = process.argv[1];
  const bases = main !== undefined && isAbsolute(main) ? [dirname(main)] : [];
  return [...new Set([...bases, process.cwd()])];
}
