import { diag } from '@opentelemetry/api';
import { POOL_LIBRARIES, POOL_METRICS_MODES, type PoolLibrary, type PoolLeakInstrumentationConfig, type PoolMetricsMode } from './types';

/** Defaults of DESIGN.md's environment table. */
export const DEFAULTS = {
  enabled: true,
  stackFrames: 50,
  fullStacks: false,
  checkinStackFrames: 30,
  leakThresholdMs: 30_000,
  waitThresholdMs: 5_000,
  maxMetricCallSites: 100,
  libraries: POOL_LIBRARIES,
  enrichErrors: false,
  poolMetrics: 'auto',
} as const;

/** The longest delay a Node.js timer takes (2^31 − 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Upper bound of every cap and limit, by option name: a larger value, from code or environment,
 * is one warning and the bound. Stacks deeper than 1000 frames cost ~0.5 ms per checkout and say
 * nothing more; thresholds past the longest timer mean "never"; call-site series past 10 000 are
 * a cardinality explosion, not a diagnosis.
 */
export const UPPER_BOUNDS: Readonly<Record<string, number>> = {
  stackFrames: 1_000,
  checkinStackFrames: 1_000,
  leakThresholdMs: MAX_TIMER_MS,
  waitThresholdMs: MAX_TIMER_MS,
  maxMetricCallSites: 10_000,
};

/** The configuration the instrumentation runs with, every value checked and defaulted. */
export interface ResolvedConfig {
  /** False when `OTEL_POOL_LEAK_ENABLED=false`: the kill switch, stronger than code options. */
  readonly killSwitch: boolean;
  readonly stackFrames: number;
  /** Capture `stackFrames` frames on every checkout instead of the smallest exact window. */
  readonly fullStacks: boolean;
  readonly checkinStackFrames: number;
  /** 0 = leak detection off. */
  readonly leakThresholdMs: number;
  /** 0 = stalled-waiter detection off. */
  readonly waitThresholdMs: number;
  readonly maxMetricCallSites: number;
  readonly libraries: ReadonlySet<PoolLibrary>;
  /** Append the holders to the message of a pool's own exhausted error. */
  readonly enrichErrors: boolean;
  /** Which `db.client.connection.*` instruments are reported (see `PoolMetricsMode`). */
  readonly poolMetrics: PoolMetricsMode;
}

/** Where malformed settings are reported; diag by default, injectable for tests. */
export type ConfigWarn = (message: string) => void;

const defaultWarn: ConfigWarn = (message) => diag.warn(message);

type Env = Readonly<Record<string, string | undefined>>;

/** Characters of a value echoed in a warning; the rest is cut (an environment value may be huge). */
export const MAX_ECHOED_CHARS = 80;
/** Unknown library names listed in one warning at most. */
const MAX_ECHOED_NAMES = 5;

/**
 * Merges code options, environment and defaults. Never throws, whatever `options` is (null, a
 * Proxy, throwing getters): a malformed or unreadable value produces one warning naming the
 * setting and the default used instead.
 */
export function resolveConfig(
  options: PoolLeakInstrumentationConfig | null | undefined,
  env: Env = process.env,
  warn: ConfigWarn = defaultWarn,
): ResolvedConfig {
  try {
    const option = optionReader(options, warn);
    return {
      killSwitch: readBoolean(env, 'OTEL_POOL_LEAK_ENABLED', DEFAULTS.enabled, warn) === false,
      stackFrames: pickCount(option('stackFrames'), 'stackFrames', env, 'OTEL_POOL_LEAK_STACK_FRAMES', DEFAULTS.stackFrames, warn),
      fullStacks: pickBoolean(option('fullStacks'), 'fullStacks', env, 'OTEL_POOL_LEAK_FULL_STACKS', DEFAULTS.fullStacks, warn),
      checkinStackFrames: pickCount(
        option('checkinStackFrames'),
        'checkinStackFrames',
        env,
        'OTEL_POOL_LEAK_CHECKIN_STACK_FRAMES',
        DEFAULTS.checkinStackFrames,
        warn,
      ),
      leakThresholdMs: pickCount(
        option('leakThresholdMs'),
        'leakThresholdMs',
        env,
        'OTEL_POOL_LEAK_THRESHOLD_MS',
        DEFAULTS.leakThresholdMs,
        warn,
      ),
      waitThresholdMs: pickCount(
        option('waitThresholdMs'),
        'waitThresholdMs',
        env,
        'OTEL_POOL_LEAK_WAIT_THRESHOLD_MS',
        DEFAULTS.waitThresholdMs,
        warn,
      ),
      maxMetricCallSites: pickCodeOnlyCount(option('maxMetricCallSites'), 'maxMetricCallSites', DEFAULTS.maxMetricCallSites, warn),
      libraries: pickLibraries(option('libraries'), env, warn),
      enrichErrors: pickBoolean(option('enrichErrors'), 'enrichErrors', env, 'OTEL_POOL_LEAK_ENRICH_ERRORS', DEFAULTS.enrichErrors, warn),
      poolMetrics: pickPoolMetrics(option('poolMetrics'), env, warn),
    };
  } catch (error) {
    // Only a broken `warn` or environment object gets here; the defaults are always safe.
    safely(() => warn(`pool-leak: the configuration could not be read (${printable(error)}); using the defaults.`));
    return {
      killSwitch: false,
      stackFrames: DEFAULTS.stackFrames,
      fullStacks: DEFAULTS.fullStacks,
      checkinStackFrames: DEFAULTS.checkinStackFrames,
      leakThresholdMs: DEFAULTS.leakThresholdMs,
      waitThresholdMs: DEFAULTS.waitThresholdMs,
      maxMetricCallSites: DEFAULTS.maxMetricCallSites,
      libraries: new Set(DEFAULTS.libraries),
      enrichErrors: DEFAULTS.enrichErrors,
      poolMetrics: DEFAULTS.poolMetrics,
    };
  }
}

/**
 * A plain copy of the options an application passed, safe to spread: null and non-objects
 * become `{}`, properties that cannot be read are left out (with one warning each).
 */
export function plainOptions(options: unknown, warn: ConfigWarn = defaultWarn): PoolLeakInstrumentationConfig {
  if (typeof options !== 'object' || options === null) return {};
  const copy: Record<string, unknown> = {};
  let keys: string[];
  try {
    keys = Object.keys(options);
  } catch (error) {
    warn(`pool-leak: the options object could not be read (${printable(error)}); using the defaults.`);
    return {};
  }
  for (const key of keys) {
    try {
      copy[key] = (options as Record<string, unknown>)[key];
    } catch (error) {
      warn(`pool-leak: option ${printable(key)} could not be read (${printable(error)}); using its default.`);
    }
  }
  return copy as PoolLeakInstrumentationConfig;
}

/** Reads one option at a time, turning an unreadable one into a warning and undefined. */
function optionReader(options: unknown, warn: ConfigWarn): (name: keyof PoolLeakInstrumentationConfig) => unknown {
  if (typeof options !== 'object' || options === null) return () => undefined;
  return (name) => {
    try {
      return (options as Record<string, unknown>)[name];
    } catch (error) {
      warn(`pool-leak: option ${name} could not be read (${printable(error)}); using its default.`);
      return undefined;
    }
  };
}

/** `value` as text for a warning, cut to {@link MAX_ECHOED_CHARS}; never throws. */
export function printable(value: unknown): string {
  let text: string;
  try {
    text = value instanceof Error ? value.message : String(value);
  } catch {
    try {
      text = Object.prototype.toString.call(value);
    } catch {
      text = '<unprintable value>';
    }
  }
  return text.length > MAX_ECHOED_CHARS ? `${text.slice(0, MAX_ECHOED_CHARS)}…` : text;
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // Nothing left to tell it to.
  }
}

function readBoolean(env: Env, name: string, fallback: boolean, warn: ConfigWarn): boolean {
  const raw = envValue(env, name)?.toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  warn(`pool-leak: ${name}="${printable(env[name])}" is not true or false; using the default ${fallback}.`);
  return fallback;
}

function pickBoolean(
  fromCode: unknown,
  optionName: string,
  env: Env,
  envName: string,
  fallback: boolean,
  warn: ConfigWarn,
): boolean {
  if (fromCode === undefined) return readBoolean(env, envName, fallback, warn);
  if (typeof fromCode === 'boolean') return fromCode;
  warn(`pool-leak: option ${optionName}=${printable(fromCode)} is not true or false; using the default ${fallback}.`);
  return fallback;
}

function pickCount(
  fromCode: unknown,
  optionName: string,
  env: Env,
  envName: string,
  fallback: number,
  warn: ConfigWarn,
): number {
  const bound = UPPER_BOUNDS[optionName];
  if (fromCode !== undefined) {
    if (isWhole(fromCode)) return bounded(fromCode, bound, `option ${optionName}`, warn);
    warn(`pool-leak: option ${optionName}=${printable(fromCode)} is not a whole number >= 0; using the default ${fallback}.`);
    return fallback;
  }
  const raw = envValue(env, envName);
  if (raw === undefined || raw === '') return fallback;
  const parsed = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (isWhole(parsed)) return bounded(parsed, bound, envName, warn);
  warn(`pool-leak: ${envName}="${printable(env[envName])}" is not a whole number >= 0; using the default ${fallback}.`);
  return fallback;
}

function pickCodeOnlyCount(fromCode: unknown, optionName: string, fallback: number, warn: ConfigWarn): number {
  if (fromCode === undefined) return fallback;
  if (isWhole(fromCode) && fromCode > 0) return bounded(fromCode, UPPER_BOUNDS[optionName], `option ${optionName}`, warn);
  warn(`pool-leak: option ${optionName}=${printable(fromCode)} is not a whole number > 0; using the default ${fallback}.`);
  return fallback;
}

/** A whole number >= 0, however large (`1e20` and a 40-digit variable are clamped, not refused). */
function isWhole(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/** `value`, or the setting's upper bound with one warning when it is larger. */
function bounded(value: number, bound: number | undefined, source: string, warn: ConfigWarn): number {
  if (bound === undefined || value <= bound) return value;
  warn(`pool-leak: ${source}=${printable(value)} is above its upper bound; using at most ${bound}.`);
  return bound;
}

function pickPoolMetrics(fromCode: unknown, env: Env, warn: ConfigWarn): PoolMetricsMode {
  const valid = POOL_METRICS_MODES.join(', ');
  if (fromCode !== undefined) {
    if ((POOL_METRICS_MODES as readonly unknown[]).includes(fromCode)) return fromCode as PoolMetricsMode;
    warn(`pool-leak: option poolMetrics=${printable(fromCode)} is not one of ${valid}; using the default ${DEFAULTS.poolMetrics}.`);
    return DEFAULTS.poolMetrics;
  }
  const raw = envValue(env, 'OTEL_POOL_LEAK_POOL_METRICS')?.toLowerCase();
  if (raw === undefined || raw === '') return DEFAULTS.poolMetrics;
  if ((POOL_METRICS_MODES as readonly string[]).includes(raw)) return raw as PoolMetricsMode;
  warn(`pool-leak: OTEL_POOL_LEAK_POOL_METRICS="${printable(env['OTEL_POOL_LEAK_POOL_METRICS'])}" is not one of ${valid}; using the default ${DEFAULTS.poolMetrics}.`);
  return DEFAULTS.poolMetrics;
}

function pickLibraries(fromCode: unknown, env: Env, warn: ConfigWarn): ReadonlySet<PoolLibrary> {
  const all = new Set<PoolLibrary>(DEFAULTS.libraries);
  if (fromCode !== undefined) {
    if (!Array.isArray(fromCode)) {
      warn('pool-leak: option libraries is not an array of library names; enabling all libraries.');
      return all;
    }
    let names: unknown[];
    try {
      names = [...(fromCode as unknown[])];
    } catch (error) {
      warn(`pool-leak: option libraries could not be read (${printable(error)}); enabling all libraries.`);
      return all;
    }
    return keepKnown(names, 'option libraries', warn) ?? all;
  }
  const raw = envValue(env, 'OTEL_POOL_LEAK_LIBRARIES');
  if (raw === undefined || raw === '' || raw.toLowerCase() === 'all') return all;
  return keepKnown(raw.split(','), 'OTEL_POOL_LEAK_LIBRARIES', warn) ?? all;
}

/**
 * Known names from the list, or undefined (all) when none of them is known: a list that names
 * nothing (`","`, `[""]`) is a mistake, and instrumenting nothing would hide it.
 */
function keepKnown(names: readonly unknown[], source: string, warn: ConfigWarn): ReadonlySet<PoolLibrary> | undefined {
  const known = new Set<PoolLibrary>();
  const unknown: string[] = [];
  for (const name of names) {
    const trimmed = typeof name === 'string' ? name.trim() : printable(name);
    if (trimmed === '') continue;
    if ((POOL_LIBRARIES as readonly string[]).includes(trimmed)) known.add(trimmed as PoolLibrary);
    else unknown.push(printable(trimmed));
  }
  const valid = POOL_LIBRARIES.join(', ');
  if (known.size === 0 && unknown.length === 0) {
    warn(`pool-leak: ${source} names no library; valid names: ${valid}. Enabling all libraries.`);
    return undefined;
  }
  if (unknown.length === 0) return known;
  const listed = unknown.slice(0, MAX_ECHOED_NAMES).join(', ') + (unknown.length > MAX_ECHOED_NAMES ? `, … ${unknown.length - MAX_ECHOED_NAMES} more` : '');
  if (known.size === 0) {
    warn(`pool-leak: ${source} names no known library (${listed}); valid names: ${valid}. Enabling all libraries.`);
    return undefined;
  }
  warn(`pool-leak: ${source} has unknown library names (${listed}), ignored; valid names: ${valid}.`);
  return known;
}

/** A variable's trimmed value; undefined when unset or not a string. */
function envValue(env: Env, name: string): string | undefined {
  const value: unknown = env[name];
  return typeof value === 'string' ? value.trim() : undefined;
}
