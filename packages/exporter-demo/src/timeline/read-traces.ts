// Reads a trace file in either format the timeline accepts: the demo's OTLP/JSON lines, or a
// Jaeger JSON export. Tells them apart by their top-level key.
import { readFileSync } from 'node:fs';
import { spansOfJaegerExport, type JaegerExportJson } from './jaeger-file';
import { spansOfOtlpRequest, type OtlpRequestJson } from './otlp-file';
import { TraceFileError, type TraceSpan } from './trace-span';

export function readTraceFile(path: string): TraceSpan[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new TraceFileError(`cannot read ${path} (${code}); give the trace file the demo wrote (demo-output/traces.jsonl) or a Jaeger JSON export.`);
  }
  return parseTraces(text, path);
}

/** Spans of a file's text: one JSON document (Jaeger, or OTLP on one line), or OTLP/JSON lines. */
export function parseTraces(text: string, where = 'trace file'): TraceSpan[] {
  const trimmed = text.trim();
  if (trimmed === '') throw new TraceFileError(`${where} is empty`);
  const whole = tryJson(trimmed);
  if (isObject(whole) && 'data' in whole) return spansOfJaegerExport(whole as JaegerExportJson, where);
  if (isObject(whole)) return spansOfOtlpRequest(whole as OtlpRequestJson, where);
  return trimmed.split('\n').flatMap((line, index) => {
    if (line.trim() === '') return [];
    const request = tryJson(line);
    if (!isObject(request)) {
      throw new TraceFileError(`${where}, line ${index + 1}: not JSON. Expected OTLP/JSON lines ({"resourceSpans":[...]}) or a Jaeger JSON export ({"data":[...]}).`);
    }
    return spansOfOtlpRequest(request as OtlpRequestJson, `${where}, line ${index + 1}`);
  });
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
