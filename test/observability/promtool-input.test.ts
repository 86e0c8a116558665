// The two pure helpers of the observability tests: reading the text exposition, and turning
// scrapes into promtool input series.
import { describe, expect, it } from 'vitest';
import { parseExposition, samplesOf, type Sample } from './exposition';
import { inputSeries, selector } from './promtool-input';

const EXPOSITION = [
  '# HELP pool_leak_suspected_total Leases held longer than the leak threshold.',
  '# UNIT pool_leak_suspected_total {lease}',
  '# TYPE pool_leak_suspected_total counter',
  'pool_leak_suspected_total{code_function_name="say \\"hi\\"",pool_call_path="a (x.js:1) ← b\\\\c\\nd"} 2',
  'db_client_connection_wait_time_bucket{le="+Inf"} 3',
  'db_client_connection_max 10',
  '',
].join('\n');

describe('parseExposition', () => {
  it('reads names, labels with their escapes undone, and values; skips comments', () => {
    const samples = parseExposition(EXPOSITION);
    expect(samples.map((sample) => sample.name)).toEqual(['pool_leak_suspected_total', 'db_client_connection_wait_time_bucket', 'db_client_connection_max']);
    expect(samples[0]?.labels).toEqual({ code_function_name: 'say "hi"', pool_call_path: 'a (x.js:1) ← b\\c\nd' });
    expect(samples[0]?.value).toBe(2);
    expect(samplesOf(samples, 'db_client_connection_wait_time_bucket', { le: '+Inf' })[0]?.value).toBe(3);
    expect(samples[2]).toEqual({ name: 'db_client_connection_max', labels: {}, value: 10 });
  });

  it('names the line it cannot read', () => {
    expect(() => parseExposition('ok 1\nbroken{a=1} 2')).toThrow(/line 2 .*expected label="value"/);
    expect(() => parseExposition('x{a="1"} one')).toThrow(/line 1 .*"one" is not a number/);
  });
});

describe('inputSeries', () => {
  it('gives each series one value per scrape, _ where absent, the last held, and the target labels', () => {
    const scrapes: Sample[][] = [
      [{ name: 'db_client_connection_max', labels: { db_client_connection_pool_name: 'p' }, value: 2 }],
      [
        { name: 'db_client_connection_max', labels: { db_client_connection_pool_name: 'p' }, value: 2 },
        { name: 'pool_leak_suspected_total', labels: { code_function_name: 'f' }, value: 1 },
      ],
    ];
    expect(inputSeries(scrapes, { job: 'j', instance: 'h:1' }, 5)).toEqual([
      { series: 'db_client_connection_max{db_client_connection_pool_name="p",instance="h:1",job="j"}', values: '2 2x5' },
      { series: 'pool_leak_suspected_total{code_function_name="f",instance="h:1",job="j"}', values: '_ 1x5' },
    ]);
    expect(inputSeries(scrapes, { job: 'j', instance: 'h:1' }, 0)[1]?.values).toBe('_ 1');
  });

  it('writes label values as PromQL string literals', () => {
    expect(selector('m', { b: 'say "hi"', a: 'x\\y\nz' })).toBe('m{a="x\\\\y\\nz",b="say \\"hi\\""}');
  });
});
