import { diag } from '@opentelemetry/api';
import { POOL_LIBRARIES, type PoolLibrary, type PoolLeakInstrumentationConfig } from './types';

/** Defaults of DESIGN.md's environment table. */
export const DEFAULTS = {
  enabled: true,
  stackFrames: 50,
  fullStacks: false,
  checkinStackFrames: 30,
  leakThresholdMs: 30_000,
  maxMetricCallSites: 100,
  libraries: POOL_LIBRARIES,
} as const;

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
  readonly maxMetricCallSites: number;
  readonly libraries: ReadonlySet<PoolLibrary>;
}

/** Where malformed settings are reported; diag by default, injectable for tests. */
export type ConfigWarn = (message: string) => void;

const defaultWarn: ConfigWarn = (message) => diag.warn(message);

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Merges code options, environment and defaults. Never throws: a malformed value produces one
 * warning naming the setting and the default used instead.
 */
export function resolveConfig(
  options: PoolLeakInstrumentationConfig,
  env: Env = process.env,
  warn: ConfigWarn = defaultWarn,
): ResolvedConfig {
  return {
    killSwitch: readBoolean(env, 'OTEL_POOL_LEAK_ENABLED', DEFAULTS.enabled, warn) === false,
    stackFrames: pickCount(options.stackFrames, 'stackFrames', env, 'OTEL_POOL_LEAK_STACK_FRAMES', DEFAULTS.stackFrames, warn),
    fullStacks: pickBoolean(options.fullStacks, 'fullStacks', env, 'OTEL_POOL_LEAK_FULL_STACKS', DEFAULTS.fullStacks, warn),
    checkinStackFrames: pickCount(
      options.checkinStackFrames,
      'checkinStackFrames',
      env,
      'OTEL_POOL_LEAK_CHECKIN_STACK_FRAMES',
      DEFAULTS.checkinStackFrames,
      warn,
    ),
    leakThresholdMs: pickCount(
      options.leakThresholdMs,
      'leakThresholdMs',
      env,
      'OTEL_POOL_LEAK_THRESHOLD_MS',
      DEFAULTS.leakThresholdMs,
      warn,
    ),
    maxMetricCallSites: pickCodeOnlyCount(options.maxMetricCallSites, 'maxMetricCallSites', DEFAULTS.maxMetricCallSites, warn),
    libraries: pickLibraries(options.libraries, env, warn),
  };
}

function readBoolean(env: Env, name: string, fallback: boolean, warn: ConfigWarn): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  warn(`pool-leak: ${name}="${env[name]}" is not true or false; using the default ${fallback}.`);
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
  warn(`pool-leak: option ${optionName}=${String(fromCode)} is not true or false; using the default ${fallback}.`);
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
  if (fromCode !== undefined) {
    if (isCount(fromCode)) return fromCode;
    warn(`pool-leak: option ${optionName}=${String(fromCode)} is not a whole number >= 0; using the default ${fallback}.`);
    return fallback;
  }
  const raw = env[envName]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const parsed = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (isCount(parsed)) return parsed;
  warn(`pool-leak: ${envName}="${env[envName]}" is not a whole number >= 0; using the default ${fallback}.`);
  return fallback;
}

function pickCodeOnlyCount(fromCode: unknown, optionName: string, fallback: number, warn: ConfigWarn): number {
  if (fromCode === undefined) return fallback;
  if (isCount(fromCode) && fromCode > 0) return fromCode;
  warn(`pool-leak: option ${optionName}=${String(fromCode)} is not a whole number > 0; using the default ${fallback}.`);
  return fallback;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function pickLibraries(fromCode: unknown, env: Env, warn: ConfigWarn): ReadonlySet<PoolLibrary> {
  const all = new Set<PoolLibrary>(DEFAULTS.libraries);
  if (fromCode !== undefined) {
    if (Array.isArray(fromCode)) return keepKnown(fromCode, 'option libraries', warn) ?? all;
    warn('pool-leak: option libraries is not an array of library names; enabling all libraries.');
    return all;
  }
  const raw = env['OTEL_POOL_LEAK_LIBRARIES']?.trim();
  if (raw === undefined || raw === '' || raw.toLowerCase() === 'all') return all;
  return keepKnown(raw.split(','), 'OTEL_POOL_LEAK_LIBRARIES', warn) ?? all;
}

/** Known names from the list, or undefined (all) when none of them is known. */
function keepKnown(names: readonly unknown[], source: string, warn: ConfigWarn): ReadonlySet<PoolLibrary> | undefined {
  const known = new Set<PoolLibrary>();
  const unknown: string[] = [];
  for (const name of names) {
    const trimmed = typeof name === 'string' ? name.trim() : String(name);
    if (trimmed === '') continue;
    if ((POOL_LIBRARIES as readonly string[]).includes(trimmed)) known.add(trimmed as PoolLibrary);
    else unknown.push(trimmed);
  }
  if (unknown.length === 0) return known;
  const valid = POOL_LIBRARIES.join(', ');
  if (known.size === 0) {
    warn(`pool-leak: ${source} names no known library (${unknown.join(', ')}); valid names: ${valid}. Enabling all libraries.`);
    return undefined;
  }
  warn(`pool-leak: ${source} has unknown library names (${unknown.join(', ')}), ignored; valid names: ${valid}.`);
  return known;
}
