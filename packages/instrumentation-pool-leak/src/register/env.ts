// The standard OTEL_* switches the register entry reads itself. Everything else (exporters,
// endpoint, sampler, service name, log level) NodeSDK reads, and OTEL_POOL_LEAK_* the
// instrumentation's own config reads.

/** This instrumentation's name in `OTEL_NODE_ENABLED_INSTRUMENTATIONS` / `..._DISABLED_...`. */
export const SHORT_NAME = 'pool-leak';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * `OTEL_SDK_DISABLED=true`: start nothing at all. Read as the SDK reads it (trimmed,
 * case-insensitive `true`); NodeSDK itself warns about other values when it is created.
 */
export function sdkDisabled(env: Env = process.env): boolean {
  return env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true';
}

/**
 * Whether pool-leak is selected by the comma lists `OTEL_NODE_ENABLED_INSTRUMENTATIONS` (when it
 * names anything, only the names in it) and `OTEL_NODE_DISABLED_INSTRUMENTATIONS` (wins over the
 * enabled list), the way `@opentelemetry/auto-instrumentations-node` reads them.
 */
export function instrumentationSelected(env: Env = process.env): boolean {
  if (instrumentationNames(env['OTEL_NODE_DISABLED_INSTRUMENTATIONS']).includes(SHORT_NAME)) return false;
  const enabled = instrumentationNames(env['OTEL_NODE_ENABLED_INSTRUMENTATIONS']);
  return enabled.length === 0 || enabled.includes(SHORT_NAME);
}

/** The names of an `OTEL_NODE_*_INSTRUMENTATIONS` comma list, trimmed and lower-cased. */
export function instrumentationNames(list: string | undefined): string[] {
  if (list === undefined) return [];
  return list
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
}
