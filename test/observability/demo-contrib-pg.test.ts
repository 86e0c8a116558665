// `--contrib-pg`: the BUILT demo as a user runs it beside auto-instrumentations-node, whose
// instrumentation-pg also reports the semconv pool gauges for pg pools. Scraped for the whole run,
// no pool is counted twice under one metric name (the exporter separates reporters only by their
// scope labels, which a dashboard sums): the pg pools' count / pending / max come from one
// reporter, and pool-leak's own signals stay.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../setup/server-process';
import { startNode } from '../support/node-process';
import { parseExposition, samplesOf } from './exposition';

const DEMO = 'packages/exporter-demo/build/main.js';
const RUN_TIMEOUT_MS = 90_000;
const LEAKING_CALLER = 'BillingService.exportInvoice';

/**
 * `name{label="value",...}` with the labels sorted and the reporter's scope labels left out: the
 * exporter tells two reporters apart only by `otel_scope_*`, which a dashboard's `sum by (pool)`
 * adds up, so two samples with one key are one pool counted twice.
 */
function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  return `${name}{${Object.entries(labels)
    .filter(([key]) => !key.startsWith('otel_scope_'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(',')}}`;
}

describe('demo --contrib-pg --prometheus-port', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pool-leak-demo-contrib-pg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the demo beside instrumentation-pg and scrapes it for the whole run. */
  async function scrapeRun(env: Record<string, string> = {}) {
    const port = await freeLoopbackPort();
    const url = `http://127.0.0.1:${port}/metrics`;
    const demo = startNode(
      ['--enable-source-maps', DEMO, '--short', '--contrib-pg', '--prometheus-port', String(port), '--output', join(dir, `traces-${port}.jsonl`)],
      { timeoutMs: RUN_TIMEOUT_MS, env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', ...env } },
    );
    let ended = false;
    void demo.ended.then(() => (ended = true));
    const twice = new Set<string>();
    const gaugePools = new Set<string>();
    let leakCounted = false;
    let scrapes = 0;
    while (!ended) {
      await sleep(250);
      let text: string;
      try {
        text = await (await fetch(url)).text();
      } catch {
        continue; // before the endpoint listens, or after shutdown closed it
      }
      scrapes++;
      const samples = parseExposition(text);
      const seen = new Set<string>();
      for (const sample of samples) {
        const key = seriesKey(sample.name, sample.labels);
        if (seen.has(key)) twice.add(key.replace(/\{.*/, ''));
        seen.add(key);
      }
      for (const sample of samplesOf(samples, 'db_client_connection_count')) gaugePools.add(sample.labels['db_client_connection_pool_name'] ?? '');
      leakCounted ||= samplesOf(samples, 'pool_leak_suspected_total').some((sample) => sample.labels['pool_call_path']?.includes(LEAKING_CALLER));
    }
    return { run: await demo.ended, scrapes, twice: [...twice].sort(), gaugePools, leakCounted };
  }

  it('counts each pool once per metric name, with the pool gauges and the leak counter present', async () => {
    const { run, scrapes, twice, gaugePools, leakCounted } = await scrapeRun();
    expect(run.code, run.context).toBe(0);
    expect(scrapes, run.context).toBeGreaterThan(0);
    expect(twice, 'metric names with a pool counted twice').toEqual([]);
    // The three pg pools of the demo (billing, catalog, carts).
    expect(gaugePools.size, [...gaugePools].join(', ')).toBe(3);
    expect(leakCounted, 'pool_leak_suspected_total under the leaking caller').toBe(true);
  }, RUN_TIMEOUT_MS + 10_000);

  it('with OTEL_POOL_LEAK_POOL_METRICS=all, the same check sees the pool gauges twice', async () => {
    const { run, twice } = await scrapeRun({ OTEL_POOL_LEAK_POOL_METRICS: 'all' });
    expect(run.code, run.context).toBe(0);
    expect(twice).toEqual(expect.arrayContaining(['db_client_connection_count', 'db_client_connection_pending_requests']));
  }, RUN_TIMEOUT_MS + 10_000);
});
