// Reads the Prometheus text exposition format (version 0.0.4, what the OpenTelemetry Prometheus
// exporter serves) into samples, and scrapes an endpoint. Only what the tests need: comments
// (# HELP, # TYPE, # UNIT) are skipped, timestamps are not expected.

/** One line of an exposition: a metric name, its labels, its value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Every sample of `text`; throws on a line it cannot read, naming the line. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    try {
      samples.push(parseLine(line));
    } catch (error) {
      throw new Error(`exposition line ${index + 1} (${JSON.stringify(line)}): ${(error as Error).message}`);
    }
  }
  return samples;
}

function parseLine(line: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) throw new Error('no metric name');
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    while (!rest.startsWith('}')) {
      const labelName = LABEL_NAME.exec(rest)?.[0];
      if (labelName === undefined || rest[labelName.length] !== '=' || rest[labelName.length + 1] !== '"') {
        throw new Error('expected label="value"');
      }
      const [value, after] = readQuoted(rest.slice(labelName.length + 2));
      labels[labelName] = value;
      rest = after.startsWith(',') ? after.slice(1) : after;
    }
    rest = rest.slice(1);
  }
  const [valueText, timestamp] = rest.trim().split(/\s+/);
  if (timestamp !== undefined) throw new Error('timestamps are not expected');
  const value = Number(valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : valueText);
  if (valueText === undefined || (Number.isNaN(value) && valueText !== 'NaN')) throw new Error(`value ${JSON.stringify(valueText)} is not a number`);
  return { name, labels, value };
}

/** A label value up to its closing quote, with the format's three escapes undone; and what follows. */
function readQuoted(text: string): [string, string] {
  let value = '';
  for (let at = 0; at < text.length; at++) {
    const char = text[at];
    if (char === '"') return [value, text.slice(at + 1)];
    if (char === '\\') {
      const next = text[++at];
      value += next === 'n' ? '\n' : (next ?? '');
    } else {
      value += char;
    }
  }
  throw new Error('unterminated label value');
}

/** GETs `url` and parses it; throws with the status when the endpoint does not answer 200. */
export async function scrape(url: string): Promise<Sample[]> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}: ${text.slice(0, 500)}`);
  return parseExposition(text);
}

/** The samples named `name` whose labels include every pair of `match`. */
export function samplesOf(samples: readonly Sample[], name: string, match: Readonly<Record<string, string>> = {}): Sample[] {
  return samples.filter((sample) => sample.name === name && Object.entries(match).every(([key, value]) => sample.labels[key] === value));
}

/** The distinct metric names of a scrape (a histogram's `_bucket`, `_sum`, `_count` each), sorted. */
export function metricNames(samples: readonly Sample[]): string[] {
  return [...new Set(samples.map((sample) => sample.name))].sort();
}
