// Where OTLP/HTTP goes, and whether anything listens there. Exporting to a closed port would only
// produce retries and diag errors, so the demo exports only when a short TCP connect succeeds.
import { connect } from 'node:net';

export const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';
const PROBE_TIMEOUT_MS = 500;

/** The base URL and the per-signal URLs of the OTLP/HTTP specification. */
export interface OtlpEndpoint {
  readonly base: string;
  readonly traces: string;
  readonly metrics: string;
  /** Where the base came from, for the "exporting to ..." line. */
  readonly source: '--otlp-endpoint' | 'OTEL_EXPORTER_OTLP_ENDPOINT' | 'default';
}

/** --otlp-endpoint, else OTEL_EXPORTER_OTLP_ENDPOINT, else Jaeger's default OTLP/HTTP port. */
export function resolveOtlpEndpoint(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): OtlpEndpoint {
  const fromEnv = env['OTEL_EXPORTER_OTLP_ENDPOINT']?.trim();
  const [raw, source] =
    flag !== undefined
      ? [flag, '--otlp-endpoint' as const]
      : fromEnv !== undefined && fromEnv !== ''
        ? [fromEnv, 'OTEL_EXPORTER_OTLP_ENDPOINT' as const]
        : [DEFAULT_OTLP_ENDPOINT, 'default' as const];
  // The specification appends /v1/<signal> to the base, keeping any path it already has.
  const base = raw.replace(/\/+$/, '');
  return { base, traces: `${base}/v1/traces`, metrics: `${base}/v1/metrics`, source };
}

/** Resolves to undefined when something accepts a TCP connection, else to the reason it did not. */
export function probeEndpoint(endpoint: OtlpEndpoint, timeoutMs = PROBE_TIMEOUT_MS): Promise<string | undefined> {
  let url: URL;
  try {
    url = new URL(endpoint.base);
  } catch {
    return Promise.resolve(`${endpoint.base} is not a URL`);
  }
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  // URL keeps the brackets of an IPv6 literal; net.connect wants the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve) => {
    const socket = connect({ host, port, autoSelectFamily: true });
    const done = (reason: string | undefined) => {
      socket.destroy();
      clearTimeout(timer);
      resolve(reason);
    };
    const timer = setTimeout(() => done(`no answer from ${url.host} within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) => done(`${url.host}: ${error.code ?? error.message}`));
  });
}
