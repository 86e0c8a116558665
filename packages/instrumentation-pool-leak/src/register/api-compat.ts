// Detects the one installation mistake that silently breaks everything contextual: the
// `@opentelemetry/api` copy this instrumentation uses cannot see the context manager or tracer
// provider another copy registered. The API keeps registrations in one process-wide registry
// with the version of the copy that created it; a copy whose compatibility check rejects that
// version sees no-ops. Checkout spans then have no parent, waiters run in the releaser's
// context and the loop-tick / foreign-context checks never fire, with no error anywhere.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ownApi from '@opentelemetry/api';
import type { ContextAPI, DiagLogger, TraceAPI } from '@opentelemetry/api';

/** The key under which every API copy of major version 1 keeps its registrations. */
const REGISTRY_KEY = Symbol.for('opentelemetry.js.api.1');
const API_PACKAGE = '@opentelemetry/api';

/** The parts of an `@opentelemetry/api` copy the check uses (a real second copy fits it). */
export interface ApiCopy {
  readonly context: Pick<ContextAPI, 'active' | 'with'>;
  readonly trace: Pick<TraceAPI, 'getTracerProvider'>;
  readonly createContextKey: (description: string) => symbol;
}

interface Registry {
  readonly version?: unknown;
  readonly trace?: unknown;
  readonly context?: unknown;
  readonly diag?: Partial<DiagLogger>;
}

export interface ApiMismatch {
  /** What was registered but is invisible: `tracer provider`, `context manager`. */
  readonly unseen: readonly string[];
  /** The version the registry was created with, i.e. that of the copy that registered. */
  readonly registeredVersion: string | undefined;
  /** The registry's diag logger: reaches the user where this copy's own `diag` does not. */
  readonly registeredDiag: Partial<DiagLogger> | undefined;
}

function registry(): Registry | undefined {
  const value = (globalThis as Record<symbol, unknown>)[REGISTRY_KEY];
  return typeof value === 'object' && value !== null ? (value as Registry) : undefined;
}

/** Whether `api.context` propagates a value, i.e. reaches a real context manager. */
function seesContextManager(api: ApiCopy): boolean {
  const key = api.createContextKey('pool-leak api check');
  const probe = api.context.active().setValue(key, true);
  return api.context.with(probe, () => api.context.active().getValue(key) === true);
}

/**
 * What `api` cannot see of what another copy registered, or undefined when it sees all of it
 * (or nothing is registered yet). Cheap: two property reads and one `context.with`.
 */
export function findApiMismatch(api: ApiCopy = ownApi): ApiMismatch | undefined {
  const registered = registry();
  if (registered === undefined) return undefined;
  const unseen: string[] = [];
  // A copy that accepts the registry returns the registered (proxy) provider itself.
  if (registered.trace !== undefined && api.trace.getTracerProvider() !== registered.trace) unseen.push('tracer provider');
  if (registered.context !== undefined && !seesContextManager(api)) unseen.push('context manager');
  if (unseen.length === 0) return undefined;
  return {
    unseen,
    registeredVersion: typeof registered.version === 'string' ? registered.version : undefined,
    registeredDiag: registered.diag,
  };
}

/** The one line that says what is wrong and what to do. */
export function describeApiMismatch(mismatch: ApiMismatch, ownVersion: string | undefined = versionOfOwnApi()): string {
  const mine = `${API_PACKAGE} ${ownVersion ?? '(unknown version)'}`;
  const theirs = `${API_PACKAGE} ${mismatch.registeredVersion ?? '(unknown version)'}`;
  return (
    `opentelemetry-instrumentation-pool-leak uses ${mine}, which cannot see the ${mismatch.unseen.join(' and ')} ` +
    `registered through ${theirs}: checkout spans will have no parent, pool waiters lose their context and ` +
    `loop-tick / foreign-context events cannot fire. Install one copy of ${API_PACKAGE} for the whole application ` +
    `(\`npm ls ${API_PACKAGE}\` shows the copies; \`npm dedupe\`, or align the versions the SDK and this package require).`
  );
}

/**
 * The version of the API copy this module loaded, read from its package.json (the API exports
 * no version and no `./package.json`). Only called on the rare mismatch path.
 */
export function versionOfOwnApi(): string | undefined {
  let dir: string;
  try {
    dir = dirname(createRequire(__filename).resolve(API_PACKAGE));
  } catch {
    return undefined;
  }
  // The entry file sits a few directories below the package root (dist/, build/src/).
  for (let depth = 0; depth < 4; depth++, dir = dirname(dir)) {
    const manifest = readManifest(join(dir, 'package.json'));
    if (manifest?.name === API_PACKAGE) return typeof manifest.version === 'string' ? manifest.version : undefined;
  }
  return undefined;
}

function readManifest(path: string): { name?: unknown; version?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown; version?: unknown };
  } catch {
    return undefined;
  }
}

/**
 * Checks at most twice per instance (when enabled, and at the first checkout, for an SDK that
 * registers after the instrumentation was created) and reports a mismatch once, through the
 * registry's diag logger when this copy cannot see it, else through `diag`.
 */
export class ApiMismatchCheck {
  private checksLeft = 2;

  constructor(
    private readonly diag: Pick<DiagLogger, 'warn'>,
    private readonly api: ApiCopy = ownApi,
  ) {}

  /** Cheap after the second call: one decrement and compare. */
  check(): void {
    if (this.checksLeft <= 0) return;
    this.checksLeft--;
    try {
      const mismatch = findApiMismatch(this.api);
      if (mismatch === undefined) return;
      this.checksLeft = 0;
      const message = describeApiMismatch(mismatch);
      const warn = mismatch.registeredDiag?.warn;
      if (typeof warn === 'function') warn.call(mismatch.registeredDiag, message);
      else this.diag.warn(message);
    } catch {
      // A check that fails must not be the reason the application fails.
    }
  }
}
