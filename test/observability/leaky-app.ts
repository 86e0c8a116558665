// Runs leaky-metrics-app.cjs (the real instrumentation, the BUILT package, pg-pool against the
// test PostgreSQL, exporter-prometheus serving /metrics) and records its exposition while it
// runs. Also: which names the built package declares, so that tests can follow signals that
// land in the instrumentation after these tests were written.
import { setTimeout as sleep } from 'node:timers/promises';
import { freeLoopbackPort } from '../setup/server-process';
import { postgresEnv, startNode, type Ended, type RunningNode } from '../support/node-process';
import { scrape, type Sample } from './exposition';

export const APP = 'test/observability/leaky-metrics-app.cjs';
/** Function names in the app: the leak, the waiter that times out, the borrowed connection. */
export const LEAKING_FUNCTION = 'exportInvoice';
export const WAITING_FUNCTION = 'loadReport';
export const BORROWING_FUNCTION = 'borrowForAudit';
export const POOL_MAX = 2;
/** The app's own limit; the tests stop it long before. */
const APP_LIFETIME_MS = 110_000;

export interface LeakyApp {
  /** `host:port` of the metrics endpoint, as a Prometheus target. */
  readonly target: string;
  readonly metricsUrl: string;
  readonly node: RunningNode;
  /** SIGTERM, then what the app printed. */
  stop(): Promise<Ended>;
}

/** Starts the app and resolves once its /metrics endpoint serves. */
export async function startLeakyApp(): Promise<LeakyApp> {
  const port = await freeLoopbackPort();
  const node = startNode([APP], {
    timeoutMs: APP_LIFETIME_MS + 5_000,
    env: {
      ...postgresEnv(),
      METRICS_PORT: String(port),
      APP_LIFETIME_MS: String(APP_LIFETIME_MS),
      // Stalled waiters well before pg-pool's timeout (1.5 s) in the app.
      OTEL_POOL_LEAK_WAIT_THRESHOLD_MS: '300',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
    },
  });
  await node.stdoutLine('metrics ready');
  const target = `127.0.0.1:${port}`;
  return {
    target,
    metricsUrl: `http://${target}/metrics`,
    node,
    stop: async () => {
      node.kill('SIGTERM');
      return node.ended;
    },
  };
}

export interface Recording {
  /** Every scrape, in order. */
  readonly scrapes: readonly (readonly Sample[])[];
  /** Whether `until` was met within the bound; false = the scrapes ran out first. */
  readonly complete: boolean;
}

/**
 * Scrapes `url` every `intervalMs` until `until` holds for a scrape, then `after` more times
 * (so series that only appear late still get a few points), at most `maxScrapes` in all.
 */
export async function record(
  url: string,
  until: (samples: readonly Sample[]) => boolean,
  options: { readonly intervalMs: number; readonly maxScrapes: number; readonly after: number },
): Promise<Recording> {
  const scrapes: Sample[][] = [];
  let left: number | undefined;
  while (scrapes.length < options.maxScrapes && left !== 0) {
    if (scrapes.length > 0) await sleep(options.intervalMs);
    const samples = await scrape(url);
    scrapes.push(samples);
    if (left !== undefined) left--;
    else if (until(samples)) left = options.after;
  }
  return { scrapes, complete: left === 0 };
}

/** Whether the built package exports a name whose value is `value` (e.g. an event or attribute name). */
export async function packageDeclares(value: string): Promise<boolean> {
  const exports: Record<string, unknown> = await import('opentelemetry-instrumentation-pool-leak');
  return Object.values(exports).includes(value);
}
