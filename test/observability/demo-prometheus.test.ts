// `npm run demo -- -- --short --prometheus-port <n>`: the BUILT demo serves its metrics for
// Prometheus while it runs. Scraped during the run, the endpoint names the leaking caller by its
// call path, and writes exactly the names documented in observability/README.md (the names the
// alert rules and the dashboard are written against). Needs no Prometheus binaries.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../setup/server-process';
import { runNode, startNode } from '../support/node-process';
import { metricNames, samplesOf, scrape, type Sample } from './exposition';
import { packageDeclares } from './leaky-app';
import { PROMETHEUS_NAMES, STALLED_NAME } from './names';

const DEMO = 'packages/exporter-demo/build/main.js';
const RUN_TIMEOUT_MS = 90_000;
const LEAKING_CALLER = 'BillingService.exportInvoice';

describe('demo --prometheus-port', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pool-leak-demo-prometheus-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves /metrics during the run, with the leak counted under the leaking call path', async () => {
    const port = await freeLoopbackPort();
    const url = `http://127.0.0.1:${port}/metrics`;
    const demo = startNode(['--enable-source-maps', DEMO, '--short', '--prometheus-port', String(port), '--output', join(dir, 'traces.jsonl')], {
      timeoutMs: RUN_TIMEOUT_MS,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' },
    });
    let ended = false;
    void demo.ended.then(() => (ended = true));
    // Scrape for as long as the demo runs (bounded by its own timeout), keeping every name seen.
    let leak: Sample | undefined;
    const names = new Set<string>();
    let scrapes = 0;
    let lastError = '';
    while (!ended) {
      await sleep(250);
      try {
        const samples = await scrape(url);
        scrapes++;
        for (const name of metricNames(samples)) names.add(name);
        leak ??= samplesOf(samples, 'pool_leak_suspected_total').find((sample) => sample.labels['pool_call_path']?.includes(LEAKING_CALLER));
      } catch (error) {
        // Before the endpoint listens, or after shutdown closed it.
        lastError = (error as Error).message;
      }
    }
    const run = await demo.ended;
    expect(run.code, run.context).toBe(0);
    expect(run.stderr).toContain(`[demo] Prometheus: metrics on ${url}`);
    expect(leak, `no pool_leak_suspected_total under ${LEAKING_CALLER} in ${scrapes} scrapes (last error: ${lastError}); ${run.context}`).toBeDefined();
    expect(leak?.labels['code_function_name']).toBe('safeConnect');
    const stalled = (await packageDeclares('pool.wait.stalled')) ? [STALLED_NAME] : [];
    expect([...names].sort()).toEqual([...PROMETHEUS_NAMES, ...stalled].sort());
  }, RUN_TIMEOUT_MS + 10_000);

  it('is listed by --help, and refuses a port out of range before starting anything', async () => {
    const help = await runNode([DEMO, '--help'], { timeoutMs: 20_000 });
    expect(help.stdout, help.context).toContain('--prometheus-port <n>');
    const run = await runNode([DEMO, '--prometheus-port', '70000'], { timeoutMs: 20_000 });
    expect(run.code, run.context).toBe(2);
    expect(run.stderr).toContain('--prometheus-port 70000 is not a TCP port (1-65535)');
  });
});
