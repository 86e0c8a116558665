// `pool-leak-report <traces.jsonl> [-o report.html]`: the timeline page of a trace file (the
// demo's OTLP/JSON lines, or a Jaeger JSON export). Exit 0 when written, 2 for bad usage, 1 when
// the file could not be read.
import { dirname, isAbsolute, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { writeTimelineReport } from './timeline/report';
import { TraceFileError } from './timeline/trace-span';

const USAGE = `Usage: pool-leak-report <traces> [-o <report.html>]

Draws the connection pools of a trace file as one self-contained HTML page: per pool, its
connections over time (leases coloured by call path), waiters, and leak / stalled / exhausted
markers, with each pool's verdict and top call path first.

  <traces>              OTLP/JSON lines ({"resourceSpans":[...]} per line, as npm run demo
                        writes demo-output/traces.jsonl) or a Jaeger JSON export ({"data":[...]})
  -o, --output <path>   where the page goes (default: report.html beside <traces>)
  -h, --help            this text`;

export function runReportCli(argv: readonly string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h', default: false } },
    });
  } catch (error) {
    process.stderr.write(`pool-leak-report: ${(error as Error).message}. Run with --help for usage.\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [input, ...extra] = parsed.positionals;
  if (input === undefined || extra.length > 0) {
    process.stderr.write(`pool-leak-report: give exactly one trace file (got ${parsed.positionals.length}).\n\n${USAGE}\n`);
    return 2;
  }
  const output = parsed.values.output ?? join(dirname(input), 'report.html');
  try {
    const written = writeTimelineReport(input, output);
    const verdicts = written.pools.map((summary) => `${summary.pool.name}: ${summary.verdict.headline}`);
    process.stderr.write(`pool-leak-report: ${written.spans} spans, ${written.pools.length} pools → ${displayPath(output)}\n`);
    for (const line of verdicts) process.stderr.write(`  ${line}\n`);
    return 0;
  } catch (error) {
    if (error instanceof TraceFileError) {
      process.stderr.write(`pool-leak-report: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

if (require.main === module) process.exitCode = runReportCli(process.argv.slice(2));

/** Relative to the working directory when inside it. */
function displayPath(path: string): string {
  const inside = relative(process.cwd(), path);
  return inside === '' || inside.startsWith('..') || isAbsolute(inside) ? path : inside;
}
