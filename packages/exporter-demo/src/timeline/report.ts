// A trace file in, the timeline page out: parse → model → verdicts → render.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { buildTimeline } from './pool-timeline';
import { readTraceFile } from './read-traces';
import { renderPage } from './render-html';
import { summarizePools, type PoolSummary } from './verdict';

export interface WrittenReport {
  readonly output: string;
  readonly spans: number;
  readonly pools: readonly PoolSummary[];
}

/** Reads `input` (OTLP/JSON lines or a Jaeger JSON export) and writes the page to `output`. */
export function writeTimelineReport(input: string, output: string): WrittenReport {
  const spans = readTraceFile(input);
  const timeline = buildTimeline(spans);
  const pools = summarizePools(timeline);
  const html = renderPage({ source: basename(input), timeline, summaries: pools });
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, html);
  return { output, spans: spans.length, pools };
}
