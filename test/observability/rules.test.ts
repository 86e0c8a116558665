// The shipped Prometheus rules, checked by promtool and unit-tested by promtool on series
// recorded from a real run: leaky-metrics-app (the BUILT instrumentation, pg-pool on the test
// PostgreSQL, @opentelemetry/exporter-prometheus) is scraped while its pool leaks, runs dry and
// times out; the scrapes become promtool's input series, one step apart in promtool's clock (a
// minute, less when a slow run needed many scrapes), the last held for ten more minutes so that
// `for: 5m` can elapse. The names the exporter wrote
// are checked against the documented mapping (observability/README.md) at the same time.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricNames, samplesOf, type Sample } from './exposition';
import { BORROWING_FUNCTION, LEAKING_FUNCTION, packageDeclares, POOL_MAX, record, startLeakyApp, WAITING_FUNCTION, type Recording } from './leaky-app';
import { PROMETHEUS_NAMES, STALLED_NAME } from './names';
import { inputSeries, rulesTestFile, type AlertTest, type ExpectedAlert } from './promtool-input';
import { OBSERVABILITY_DIR, prometheusToolsFor, RULES_FILE, runPromtool } from './prometheus-tools';

const JOB = 'leaky-metrics-app';
/**
 * The recording is spread over at most this much of promtool's clock (a step of a minute or
 * less per scrape): well inside the counter alerts' 10 and 15 minute windows, however many
 * scrapes a slow machine needed.
 */
const RECORDING_SPAN_SECONDS = 9 * 60;
/** The last scrape is held this long after it. */
const HOLD_SECONDS = 10 * 60;
/** After the last scrape: past PoolNearMax's `for: 5m`, within the hold. */
const NEAR_MAX_AFTER_LAST_SECONDS = 6 * 60;
const SCOPE_LABELS = ['otel_scope_name', 'otel_scope_version'];
const CALL_SITE_LABELS = ['code_function_name', 'code_file_path', 'code_line_number', 'pool_call_path'];
const POOL_LABEL = 'db_client_connection_pool_name';
const CAUSE_LABEL = 'pool_exhaustion_cause';
const CAUSES = ['leaked_connections', 'slow_queries', 'undersized_pool', 'mixed'];

const tools = prometheusToolsFor('the promtool rule tests (test/observability/rules.test.ts)');

describe('shipped Prometheus rules (promtool)', () => {
  if ('fail' in tools) {
    it('has promtool and prometheus', () => expect.fail(tools.fail));
    return;
  }
  if ('skip' in tools) {
    it.skip(`promtool missing: ${tools.skip}`, () => {});
    return;
  }
  const { promtool } = tools.run;

  it('promtool check rules accepts pool-leak.rules.yml', () => {
    const run = runPromtool(promtool, ['check', 'rules', RULES_FILE]);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toContain('SUCCESS: 5 rules found');
  });

  describe('on series recorded from a leaking pg pool', () => {
    let recording: Recording;
    let target: string;
    let appOutput: string;
    let stalledDeclared: boolean;
    let causeDeclared: boolean;
    let workDir: string;

    beforeAll(async () => {
      stalledDeclared = await packageDeclares('pool.wait.stalled');
      causeDeclared = await packageDeclares('pool.exhaustion.cause');
      workDir = mkdtempSync(join(tmpdir(), 'pool-leak-promtool-'));
      const app = await startLeakyApp();
      target = app.target;
      try {
        recording = await record(
          app.metricsUrl,
          (samples) =>
            samplesOf(samples, 'pool_leak_suspected_total', { code_function_name: LEAKING_FUNCTION }).length > 0 &&
            samplesOf(samples, 'pool_use_foreign_context_total').length > 0 &&
            (samplesOf(samples, 'db_client_connection_timeouts_total')[0]?.value ?? 0) >= 2 &&
            (!stalledDeclared || samplesOf(samples, STALLED_NAME).length > 0),
          { intervalMs: 500, maxScrapes: 60, after: 2 },
        );
      } finally {
        appOutput = (await app.stop()).context;
      }
    }, 60_000);

    afterAll(() => {
      if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
    });

    const last = (): readonly Sample[] => recording.scrapes.at(-1) ?? [];
    const only = (name: string, match: Record<string, string> = {}): Sample => {
      const found = samplesOf(last(), name, match);
      expect(found, `one ${name} ${JSON.stringify(match)} series in the last scrape; ${appOutput}`).toHaveLength(1);
      return found[0] as Sample;
    };

    it('records a leak, a borrowed connection and timeouts within 30 s', () => {
      expect(recording.complete, `after ${recording.scrapes.length} scrapes the app had not leaked and timed out; ${appOutput}`).toBe(true);
    });

    it('writes the names and labels the README documents', () => {
      const expected = [...PROMETHEUS_NAMES, ...(stalledDeclared ? [STALLED_NAME] : [])].sort();
      expect(metricNames(last())).toEqual(expected);
      const readme = readFileSync(join(OBSERVABILITY_DIR, 'README.md'), 'utf8');
      for (const name of [...expected, STALLED_NAME, ...CALL_SITE_LABELS, POOL_LABEL, CAUSE_LABEL, 'db_client_connection_state']) {
        expect(readme, `observability/README.md names ${name}`).toContain(`\`${name}`);
      }
      const leak = only('pool_leak_suspected_total', { code_function_name: LEAKING_FUNCTION });
      expect(Object.keys(leak.labels).sort()).toEqual([POOL_LABEL, ...CALL_SITE_LABELS, ...SCOPE_LABELS].sort());
      expect(leak.labels['pool_call_path']).toMatch(new RegExp(`^${LEAKING_FUNCTION} \\(test/observability/leaky-metrics-app\\.cjs:\\d+\\)`));
      const timeouts = only('db_client_connection_timeouts_total');
      expect(Object.keys(timeouts.labels).sort()).toEqual([POOL_LABEL, ...SCOPE_LABELS, ...(causeDeclared ? [CAUSE_LABEL] : [])].sort());
      if (causeDeclared) expect(CAUSES).toContain(timeouts.labels[CAUSE_LABEL]);
      expect(only('db_client_connection_count', { db_client_connection_state: 'used' }).value).toBe(POOL_MAX);
      expect(only('db_client_connection_max').value).toBe(POOL_MAX);
    });

    it('fire as promtool test rules expects: leak, exhausted, stalled, near max, foreign use', () => {
      const targetLabels = { job: JOB, instance: target };
      const steps = recording.scrapes.length - 1;
      const stepSeconds = Math.max(1, Math.min(60, Math.floor(RECORDING_SPAN_SECONDS / Math.max(1, steps))));
      const series = inputSeries(recording.scrapes, targetLabels, Math.ceil(HOLD_SECONDS / stepSeconds));
      // The counter alerts at the last scrape: later, a counter that has not moved since it
      // appeared is (rightly) no longer news once its window has passed its first sample.
      const evalSeconds = steps * stepSeconds;
      const nearMaxSeconds = evalSeconds + NEAR_MAX_AFTER_LAST_SECONDS;
      /** The alert's labels: the series' own (no name), the scrape's, the rule's. */
      const labelsOf = (sample: Sample, severity: string) => ({ ...sample.labels, ...targetLabels, severity });
      const at = (site: Sample) =>
        `${site.labels['code_function_name']} (${site.labels['code_file_path']}:${site.labels['code_line_number']})`;

      const leak = only('pool_leak_suspected_total', { code_function_name: LEAKING_FUNCTION });
      const pool = leak.labels[POOL_LABEL] ?? '';
      const timeouts = only('db_client_connection_timeouts_total');
      const verdict = timeouts.labels[CAUSE_LABEL] === undefined ? '' : ` (verdict: ${timeouts.labels[CAUSE_LABEL]})`;
      const foreign = only('pool_use_foreign_context_total', { code_function_name: BORROWING_FUNCTION });
      const expected = (site: Sample, severity: string, summary: string, description: string): ExpectedAlert => ({
        exp_labels: labelsOf(site, severity),
        exp_annotations: { summary, description },
      });
      const alerts: AlertTest[] = [
        // `for: 5m` cannot have elapsed at the first step, whatever the series say.
        { evalSeconds: 0, alertname: 'PoolNearMax', expected: [] },
        {
          evalSeconds,
          alertname: 'PoolLeakSuspected',
          expected: [
            expected(
              leak,
              'warning',
              `Connection leak in pool ${pool} at ${at(leak)}`,
              `Leases taken here were held past the leak threshold in the last 15 minutes. Call path: ${leak.labels['pool_call_path']}. ` +
                'The "<library> leak" spans carry the checkout stack.',
            ),
          ],
        },
        {
          evalSeconds,
          alertname: 'PoolExhausted',
          expected: [
            expected(
              timeouts,
              'critical',
              `Pool ${pool} is exhausted: checkouts time out${verdict}`,
              'Checkouts timed out in the last 10 minutes. Verdicts: leaked_connections (holders idle, held longer than the waiter waited: ' +
                'see PoolLeakSuspected), slow_queries (holders busy), undersized_pool (holders turn over, demand stays above max), mixed. ' +
                'The pool.exhausted event on a failed checkout span lists the holders.',
            ),
          ],
        },
        {
          evalSeconds: nearMaxSeconds,
          alertname: 'PoolNearMax',
          expected: [
            {
              exp_labels: { [POOL_LABEL]: pool, ...targetLabels, severity: 'warning' },
              exp_annotations: {
                summary: `Pool ${pool} has used 100% of its connections for 5 minutes`,
                description:
                  'Nearly every connection of the pool is checked out. If PoolLeakSuspected fires for the same pool, leaks hold them; ' +
                  'otherwise load or slow queries do.',
              },
            },
          ],
        },
        {
          evalSeconds,
          alertname: 'PoolForeignContextUse',
          expected: [
            expected(
              foreign,
              'info',
              `A connection of pool ${pool} taken at ${at(foreign)} is used by another request`,
              `Statements ran in another trace on a connection checked out here, in the last 15 minutes. Call path: ${foreign.labels['pool_call_path']}. ` +
                'The pool.use.foreign_context span event has the stack of the statement.',
            ),
          ],
        },
        {
          evalSeconds,
          alertname: 'PoolWaitStalled',
          // Until the instrumentation declares pool.wait.stalled there is no such series, and no alert.
          expected: stalledDeclared
            ? samplesOf(last(), STALLED_NAME).map((stalled) => {
                expect(stalled.labels['code_function_name']).toBe(WAITING_FUNCTION);
                const cause = stalled.labels[CAUSE_LABEL];
                return expected(
                  stalled,
                  'warning',
                  `Checkouts of pool ${pool} stall at ${at(stalled)}${cause === undefined ? '' : ` (verdict: ${cause})`}`,
                  'Checkouts waited past the wait threshold in the last 10 minutes. The "<library> wait.stalled" spans list who held the connections.',
                );
              })
            : [],
        },
      ];
      const testFile = join(workDir, 'pool-leak.rules.test.yml');
      writeFileSync(testFile, rulesTestFile(RULES_FILE, stepSeconds, series, alerts));
      const run = runPromtool(promtool, ['test', 'rules', testFile]);
      expect(run.status, `${run.output}\n(${series.length} input series, ${recording.scrapes.length} scrapes, ${stepSeconds} s apart)`).toBe(0);
      expect(run.output).toContain('SUCCESS');
    });
  });
});
