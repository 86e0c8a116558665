// A throw-away Prometheus server (Debian's `prometheus` binary): a free loopback port, a
// temporary storage directory removed at stop, one scrape job, the rules files given, and short
// scrape and evaluation intervals so that alerts fire within seconds.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freeLoopbackPort, startServerProcess } from '../setup/server-process';

export interface PrometheusOptions {
  readonly binary: string;
  readonly ruleFiles: readonly string[];
  readonly job: string;
  /** `host:port` of the metrics endpoint to scrape. */
  readonly target: string;
  readonly intervalSeconds: number;
}

export interface PrometheusServer {
  readonly url: string;
  /** GET `/api/v1/<path>` and the `data` of a `success` answer; throws with the error otherwise. */
  api<T>(path: string): Promise<T>;
  stop(): Promise<void>;
}

/** One alert as `/api/v1/alerts` lists it. */
export interface ActiveAlert {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: 'pending' | 'firing' | 'inactive';
  readonly value: string;
}

const READY_TIMEOUT_MS = 30_000;

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'pool-leak-prometheus-'));
  const port = await freeLoopbackPort();
  const interval = `${options.intervalSeconds}s`;
  // JSON is YAML: no YAML library needed.
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: options.ruleFiles,
    scrape_configs: [{ job_name: options.job, static_configs: [{ targets: [options.target] }] }],
  };
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const server = await startServerProcess({
    name: 'prometheus',
    binary: options.binary,
    args: [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    port,
    tempDir: dir,
    readyTimeoutMs: READY_TIMEOUT_MS,
    // Prometheus answers /-/ready with 200 once its storage and rules are loaded.
    answers: (socket, ready) => {
      socket.once('data', (data) => ready(data.toString().startsWith('HTTP/1.1 200')));
      socket.connect(port, '127.0.0.1', () => socket.write('GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'));
    },
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    async api<T>(path: string): Promise<T> {
      const response = await fetch(`${url}/api/v1/${path}`, { signal: AbortSignal.timeout(5_000) });
      const body = (await response.json()) as { status: string; data?: T; error?: string; errorType?: string };
      if (body.status !== 'success' || body.data === undefined) {
        throw new Error(`GET /api/v1/${path}: ${response.status} ${body.errorType ?? ''} ${body.error ?? JSON.stringify(body)}`);
      }
      return body.data;
    },
    stop: () => server.stop(),
  };
}

/**
 * Polls `probe` every `intervalMs` until it returns a value, for at most `timeoutMs`; then throws
 * with `describe()` (what was seen last) so a failure says how far it got.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined>, options: { timeoutMs: number; intervalMs: number; describe: () => string }): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() >= deadline) throw new Error(`not within ${options.timeoutMs / 1000} s: ${options.describe()}`);
    await sleep(options.intervalMs);
  }
}
