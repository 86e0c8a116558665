// Command-line flags of `npm run demo`: parsed with node:util, checked, defaulted.
import { parseArgs } from 'node:util';

/** Everything the demo run is shaped by. */
export interface DemoOptions {
  /** Load stops issuing requests after this long, even if `requests` were not all sent. */
  readonly durationMs: number;
  readonly requests: number;
  readonly concurrency: number;
  readonly poolSize: number;
  /** The pool's `connectionTimeoutMillis`: how long a checkout waits before it fails. */
  readonly checkoutTimeoutMs: number;
  /** `leakThresholdMs` of the instrumentation. */
  readonly thresholdMs: number;
  /** Where the OTLP/JSON trace file goes. */
  readonly output: string;
  /** Base OTLP/HTTP endpoint (without /v1/traces); undefined = OTEL_EXPORTER_OTLP_ENDPOINT or default. */
  readonly otlpEndpoint: string | undefined;
  /** Serve Prometheus metrics on 127.0.0.1:<port>/metrics; undefined = no Prometheus endpoint. */
  readonly prometheusPort: number | undefined;
  /** Also register `@opentelemetry/instrumentation-pg`, as auto-instrumentations-node would. */
  readonly contribPg: boolean;
  readonly short: boolean;
}

export type CliResult = { readonly kind: 'run'; readonly options: DemoOptions } | { readonly kind: 'help'; readonly text: string };

/** A flag the user got wrong; the message says which and what to do. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Two profiles. The full one is sized so the pool runs dry about halfway through (one leak every
 * 15 requests, 15 requests a second, 10 connections); the short one (tests, a quick look) has a
 * smaller pool so the same happens within a few seconds: the third leak is request 42, about 4 s
 * in, and 7 s leave room for a slow machine to get there.
 */
const FULL = { durationS: 20, requests: 300, concurrency: 32, poolSize: 10, checkoutTimeoutMs: 1000, thresholdMs: 1500 };
const SHORT = { durationS: 7, requests: 120, concurrency: 32, poolSize: 3, checkoutTimeoutMs: 1000, thresholdMs: 1000 };
export const DEFAULT_OUTPUT = 'demo-output/traces.jsonl';

export const USAGE = `Usage: npm run demo [-- -- <flags>]
   or: node --enable-source-maps packages/exporter-demo/build/main.js [flags]

Starts a throw-away PostgreSQL and a small HTTP service whose pg pool leaks, drives load at it
until checkouts time out, and prints which function holds the connections. Traces go to an
OTLP/JSON file always, and to an OTLP/HTTP endpoint (Jaeger) when one is listening.

Flags:
  --duration <seconds>       spread the billing requests over this  (default ${FULL.durationS}, --short ${SHORT.durationS})
  --requests <n>             stop after this many requests          (default ${FULL.requests}, --short ${SHORT.requests})
  --concurrency <n>          requests in flight at once             (default ${FULL.concurrency})
  --pool-size <n>            pg pool max connections                (default ${FULL.poolSize}, --short ${SHORT.poolSize})
  --checkout-timeout <ms>    pool connectionTimeoutMillis           (default ${FULL.checkoutTimeoutMs})
  --threshold <ms>           leak threshold of the instrumentation  (default ${FULL.thresholdMs}, --short ${SHORT.thresholdMs})
  --output <path>            OTLP/JSON trace file                   (default ${DEFAULT_OUTPUT})
  --otlp-endpoint <url>      OTLP/HTTP base URL; overrides OTEL_EXPORTER_OTLP_ENDPOINT
                             (default http://localhost:4318, Jaeger v2 all-in-one)
  --prometheus-port <n>      also serve the metrics for Prometheus on 127.0.0.1:<n>/metrics
                             (default: no Prometheus endpoint)
  --contrib-pg               also register @opentelemetry/instrumentation-pg beside pool-leak,
                             as auto-instrumentations-node would (one set of pool metrics stays)
  --short                    a run of a few seconds (tests, a quick look)
  -h, --help                 this text

Flags given explicitly win over the --short profile.`;

const FLAGS = ['duration', 'requests', 'concurrency', 'pool-size', 'checkout-timeout', 'threshold', 'output', 'otlp-endpoint', 'prometheus-port', 'contrib-pg', 'short'];

/**
 * Parses `argv` (without node and script). Throws {@link UsageError} on a bad flag, and when npm
 * swallowed the flags: `npm run demo -- --short` hands `--short` to the inner `npm run demo:run`
 * as its own config (npm_config_short), so the demo would silently run with the defaults.
 */
export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliResult {
  const swallowed = FLAGS.filter((flag) => env[`npm_config_${flag.replaceAll('-', '_')}`] !== undefined);
  if (env['npm_lifecycle_event'] === 'demo:run' && swallowed.length > 0) {
    throw new UsageError(
      `npm kept --${swallowed.join(', --')} for itself. Put a second -- before the demo's flags: ` +
        '`npm run demo -- -- --short`, or run `node --enable-source-maps packages/exporter-demo/build/main.js --short`.',
    );
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        requests: { type: 'string' },
        concurrency: { type: 'string' },
        'pool-size': { type: 'string' },
        'checkout-timeout': { type: 'string' },
        threshold: { type: 'string' },
        output: { type: 'string' },
        'otlp-endpoint': { type: 'string' },
        'prometheus-port': { type: 'string' },
        'contrib-pg': { type: 'boolean', default: false },
        short: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    // parseArgs explains unknown flags and missing values well; add where to look.
    throw new UsageError(`${(error as Error).message}. Run with --help for the list of flags.`);
  }
  if (values.help) return { kind: 'help', text: USAGE };
  const profile = values.short ? SHORT : FULL;
  const endpoint = values['otlp-endpoint'];
  if (endpoint !== undefined) checkUrl('--otlp-endpoint', endpoint);
  return {
    kind: 'run',
    options: {
      durationMs: Math.round(number('--duration', values.duration, profile.durationS, 0.1) * 1000),
      requests: integer('--requests', values.requests, profile.requests, 1),
      concurrency: integer('--concurrency', values.concurrency, profile.concurrency, 1),
      poolSize: integer('--pool-size', values['pool-size'], profile.poolSize, 1),
      checkoutTimeoutMs: integer('--checkout-timeout', values['checkout-timeout'], profile.checkoutTimeoutMs, 1),
      thresholdMs: integer('--threshold', values.threshold, profile.thresholdMs, 100),
      output: values.output ?? DEFAULT_OUTPUT,
      otlpEndpoint: endpoint,
      prometheusPort: port('--prometheus-port', values['prometheus-port']),
      contribPg: values['contrib-pg'],
      short: values.short,
    },
  };
}

function number(flag: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < min) {
    throw new UsageError(`${flag} ${JSON.stringify(raw)} is not a number >= ${min}; for example ${flag} ${fallback}.`);
  }
  return value;
}

function integer(flag: string, raw: string | undefined, fallback: number, min: number): number {
  const value = number(flag, raw, fallback, min);
  if (!Number.isSafeInteger(value)) throw new UsageError(`${flag} ${JSON.stringify(raw)} is not a whole number; for example ${flag} ${fallback}.`);
  return value;
}

function port(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = integer(flag, raw, 9464, 1);
  if (value > 65_535) throw new UsageError(`${flag} ${value} is not a TCP port (1-65535); for example ${flag} 9464.`);
  return value;
}

function checkUrl(flag: string, raw: string): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${flag} ${JSON.stringify(raw)} is not a URL; for example ${flag} http://localhost:4318.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${flag} must be an http:// or https:// URL (OTLP/HTTP), not ${url.protocol}//...`);
  }
}
