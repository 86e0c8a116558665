// A real Prometheus server with the shipped rules file scrapes leaky-metrics-app (the BUILT
// instrumentation, pg-pool leaking on the test PostgreSQL, @opentelemetry/exporter-prometheus):
// the leak alert must fire at the leaking call site, read through Prometheus's own HTTP API; then
// every query of the shipped Grafana dashboard runs against that server and finds the series.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BORROWING_FUNCTION, LEAKING_FUNCTION, packageDeclares, startLeakyApp, type LeakyApp } from './leaky-app';
import { DASHBOARD_FILE, prometheusToolsFor, RULES_FILE } from './prometheus-tools';
import { startPrometheus, waitFor, type ActiveAlert, type PrometheusServer } from './prometheus-server';

const JOB = 'leaky-metrics-app';
const INTERVAL_SECONDS = 1;
/** Prometheus start, first scrapes, the leak threshold (1 s) and a rule evaluation, with room for a busy machine. */
const ALERT_TIMEOUT_MS = 45_000;
/** What the dashboard's Grafana variables become for these queries. */
const GRAFANA_VARIABLES: Readonly<Record<string, string>> = { $__rate_interval: '15s', $__range: '5m', $job: '.*', $pool: '.*' };

interface DashboardTarget {
  readonly expr: string;
}
interface DashboardPanel {
  readonly type: string;
  readonly title: string;
  readonly targets?: readonly DashboardTarget[];
}
interface DashboardVariable {
  readonly name: string;
  readonly type: string;
  readonly definition?: string;
}
interface Dashboard {
  readonly panels: readonly DashboardPanel[];
  readonly templating: { readonly list: readonly DashboardVariable[] };
}

const tools = prometheusToolsFor('the Prometheus server test (test/observability/prometheus.test.ts)');

describe('a real Prometheus with the shipped rules, scraping a leaking pg pool', () => {
  if ('fail' in tools) {
    it('has promtool and prometheus', () => expect.fail(tools.fail));
    return;
  }
  if ('skip' in tools) {
    it.skip(`prometheus missing: ${tools.skip}`, () => {});
    return;
  }

  let app: LeakyApp | undefined;
  let prometheus: PrometheusServer | undefined;
  let appOutput = '(still running)';
  let stalledDeclared = false;

  beforeAll(async () => {
    stalledDeclared = await packageDeclares('pool.wait.stalled');
    app = await startLeakyApp();
    prometheus = await startPrometheus({
      binary: tools.run.prometheus,
      ruleFiles: [RULES_FILE],
      job: JOB,
      target: app.target,
      intervalSeconds: INTERVAL_SECONDS,
    });
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop();
    if (app !== undefined) appOutput = (await app.stop()).context;
  }, 30_000);

  const server = (): PrometheusServer => {
    if (prometheus === undefined || app === undefined) throw new Error('Prometheus or the app did not start (see beforeAll)');
    return prometheus;
  };

  it('fires PoolLeakSuspected at the leaking call site, with PoolExhausted and PoolForeignContextUse; PoolNearMax is pending', async () => {
    let seen: readonly ActiveAlert[] = [];
    let targets = '';
    const is = (alert: ActiveAlert, name: string, state: ActiveAlert['state'], labels: Record<string, string> = {}) =>
      alert.labels['alertname'] === name && alert.state === state && Object.entries(labels).every(([key, value]) => alert.labels[key] === value);
    const wanted: [string, ActiveAlert['state'], Record<string, string>][] = [
      ['PoolLeakSuspected', 'firing', { code_function_name: LEAKING_FUNCTION }],
      ['PoolExhausted', 'firing', {}],
      ['PoolForeignContextUse', 'firing', { code_function_name: BORROWING_FUNCTION }],
      // `for: 5m`: it cannot fire within this test, but it is on its way.
      ['PoolNearMax', 'pending', {}],
    ];
    const alerts = await waitFor(
      async () => {
        seen = (await server().api<{ alerts: ActiveAlert[] }>('alerts')).alerts;
        const health = await server().api<{ activeTargets: { health: string; lastError: string }[] }>('targets');
        targets = JSON.stringify(health.activeTargets.map(({ health: up, lastError }) => ({ up, lastError })));
        return wanted.every(([name, state, labels]) => seen.some((alert) => is(alert, name, state, labels))) ? seen : undefined;
      },
      { timeoutMs: ALERT_TIMEOUT_MS, intervalMs: 500, describe: () => `targets ${targets}; alerts ${JSON.stringify(seen, null, 1)}; app: ${appOutput}` },
    );

    const leak = alerts.find((alert) => is(alert, 'PoolLeakSuspected', 'firing', { code_function_name: LEAKING_FUNCTION }));
    const pool = leak?.labels['db_client_connection_pool_name'] ?? '';
    expect(leak?.labels).toMatchObject({ job: JOB, instance: app?.target, severity: 'warning' });
    expect(leak?.labels['code_file_path']).toMatch(/test\/observability\/leaky-metrics-app\.cjs$/);
    expect(leak?.labels['pool_call_path']).toMatch(new RegExp(`^${LEAKING_FUNCTION} \\(test/observability/leaky-metrics-app\\.cjs:\\d+\\)`));
    expect(leak?.annotations['summary']).toBe(
      `Connection leak in pool ${pool} at ${LEAKING_FUNCTION} (${leak?.labels['code_file_path']}:${leak?.labels['code_line_number']})`,
    );
    // Only the leaking call site leaks; the borrowed connection and the waiters give theirs back or never get one.
    expect(alerts.filter((alert) => alert.labels['alertname'] === 'PoolLeakSuspected').map((alert) => alert.labels['code_function_name'])).toEqual([
      LEAKING_FUNCTION,
    ]);
    const exhausted = alerts.find((alert) => is(alert, 'PoolExhausted', 'firing'));
    expect(exhausted?.labels).toMatchObject({ db_client_connection_pool_name: pool, severity: 'critical' });
    const nearMax = alerts.find((alert) => is(alert, 'PoolNearMax', 'pending'));
    expect(nearMax?.labels).toMatchObject({ db_client_connection_pool_name: pool, job: JOB });
    expect(Number(nearMax?.value)).toBe(1);
    if (stalledDeclared) {
      // The app's waiters wait past OTEL_POOL_LEAK_WAIT_THRESHOLD_MS (300 ms) before pg-pool's timeout (1.5 s).
      const stalled = await waitFor(
        async () => (await server().api<{ alerts: ActiveAlert[] }>('alerts')).alerts.find((alert) => is(alert, 'PoolWaitStalled', 'firing')),
        { timeoutMs: 10_000, intervalMs: 500, describe: () => 'PoolWaitStalled never fired although the package declares pool.wait.stalled' },
      );
      expect(stalled.labels).toMatchObject({ db_client_connection_pool_name: pool, severity: 'warning' });
    }
  }, 90_000);

  it('answers every query of the shipped Grafana dashboard with series', async () => {
    // rate() and increase() need two samples in their window: wait for a few scrapes of the leak.
    const scrapes = `count_over_time(pool_leak_suspected_total[${GRAFANA_VARIABLES['$__rate_interval']}]) >= 4`;
    await waitFor(
      async () => ((await server().api<{ result: unknown[] }>(`query?query=${encodeURIComponent(scrapes)}`)).result.length > 0 ? true : undefined),
      { timeoutMs: ALERT_TIMEOUT_MS, intervalMs: 500, describe: () => `Prometheus never had 4 scrapes of pool_leak_suspected_total; app: ${appOutput}` },
    );
    const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
    const queries = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));
    expect(queries.length).toBeGreaterThanOrEqual(10);
    for (const { panel, expr } of queries) {
      const promql = Object.entries(GRAFANA_VARIABLES).reduce((text, [name, value]) => text.replaceAll(name, value), expr);
      const data = await server().api<{ result: unknown[] }>(`query?query=${encodeURIComponent(promql)}`);
      // No stalled series until the instrumentation counts pool.wait.stalled.
      const expectsSeries = stalledDeclared || !expr.includes('pool_wait_stalled_total');
      if (expectsSeries) expect(data.result.length, `panel "${panel}": ${promql} found no series`).toBeGreaterThan(0);
    }
    // The variables: Grafana's label_values(metric{...}, label), as Prometheus's label API.
    for (const variable of dashboard.templating.list.filter((entry) => entry.type === 'query')) {
      const [, metric, label] = /^label_values\((.+), (\w+)\)$/.exec(variable.definition ?? '') ?? [];
      expect(metric, `variable ${variable.name}: ${variable.definition}`).toBeDefined();
      const selector = Object.entries(GRAFANA_VARIABLES).reduce((text, [name, value]) => text.replaceAll(name, value), metric ?? '');
      const values = await server().api<string[]>(`label/${label}/values?match[]=${encodeURIComponent(selector)}`);
      expect(values.length, `variable ${variable.name} has no values`).toBeGreaterThan(0);
    }
  }, 75_000);
});
