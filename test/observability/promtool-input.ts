// Turns a sequence of scrapes into the `input_series` of a `promtool test rules` file: one
// series per metric name and label set, one value per scrape (`_` where the series was absent),
// then the last value held for a number of steps so that `for:` durations can elapse. The file is
// written as JSON, which is YAML too, so no YAML library is needed.
import type { Sample } from './exposition';

/** One `input_series` entry. */
export interface InputSeries {
  readonly series: string;
  readonly values: string;
}

/** What a scrape by Prometheus adds to every series of a target. */
export interface TargetLabels {
  readonly job: string;
  readonly instance: string;
}

/**
 * The series of `scrapes` (in scrape order, one promtool step apart), each with the target's
 * labels added as a Prometheus scrape adds them, and its value in the last scrape repeated
 * `holdSteps` more times.
 */
export function inputSeries(scrapes: readonly (readonly Sample[])[], target: TargetLabels, holdSteps: number): InputSeries[] {
  const byKey = new Map<string, (number | undefined)[]>();
  scrapes.forEach((samples, step) => {
    for (const sample of samples) {
      const key = selector(sample.name, { ...sample.labels, ...target });
      let values = byKey.get(key);
      if (values === undefined) {
        values = new Array<number | undefined>(scrapes.length).fill(undefined);
        byKey.set(key, values);
      }
      values[step] = sample.value;
    }
  });
  return [...byKey.entries()].map(([series, values]) => {
    const shown = values.map(formatValue);
    // `axn` stands for a followed by n more copies of a: the last scrape, then the hold.
    if (holdSteps > 0) shown[shown.length - 1] = `${shown.at(-1)}x${holdSteps}`;
    return { series, values: shown.join(' ') };
  });
}

/** `name{a="1",b="2"}` with label values escaped as PromQL string literals. */
export function selector(name: string, labels: Readonly<Record<string, string>>): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((key) => `${key}="${escapeLabelValue(labels[key] ?? '')}"`);
  return `${name}{${pairs.join(',')}}`;
}

function escapeLabelValue(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function formatValue(value: number | undefined): string {
  if (value === undefined) return '_';
  if (value === Infinity) return 'Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** An alert promtool is told to expect: its labels besides `alertname`, and its annotations. */
export interface ExpectedAlert {
  readonly exp_labels: Readonly<Record<string, string>>;
  readonly exp_annotations: Readonly<Record<string, string>>;
}

/** One `alert_rule_test` entry: at `evalSeconds`, exactly these alerts of `alertname` fire. */
export interface AlertTest {
  readonly evalSeconds: number;
  readonly alertname: string;
  readonly expected: readonly ExpectedAlert[];
}

/** A complete `promtool test rules` file with one test group; series steps and rule evaluations `stepSeconds` apart. */
export function rulesTestFile(rulesFile: string, stepSeconds: number, series: readonly InputSeries[], alerts: readonly AlertTest[]): string {
  const file = {
    rule_files: [rulesFile],
    evaluation_interval: `${stepSeconds}s`,
    tests: [
      {
        interval: `${stepSeconds}s`,
        input_series: series,
        alert_rule_test: alerts.map((alert) => ({
          eval_time: `${alert.evalSeconds}s`,
          alertname: alert.alertname,
          exp_alerts: alert.expected,
        })),
      },
    ],
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}
