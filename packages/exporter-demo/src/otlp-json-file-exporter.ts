// A SpanExporter that writes the OpenTelemetry file-exporter format: one OTLP/JSON
// ExportTraceServiceRequest (`{"resourceSpans":[...]}`) per line, one line per export call.
// Jaeger UI (Search → Upload JSON) reads such a file, and each line is a valid body for
// `POST /v1/traces` with `content-type: application/json`.
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { toOtlpTraceRequest } from './otlp-json';

export class OtlpJsonFileExporter implements SpanExporter {
  private fd: number | undefined;
  /** Spans written so far. */
  spans = 0;
  /** Lines (export calls) written so far. */
  lines = 0;

  /** Creates the directory and truncates the file now, so a bad path fails before any work. */
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'w');
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.fd === undefined) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`${this.path} is already closed`) });
      return;
    }
    if (spans.length === 0) {
      resultCallback({ code: ExportResultCode.SUCCESS });
      return;
    }
    try {
      // Synchronous on purpose: the batch processor calls this rarely, and a line must never be
      // half written when the process exits right after shutdown.
      writeSync(this.fd, `${JSON.stringify(toOtlpTraceRequest(spans))}\n`);
      this.spans += spans.length;
      this.lines++;
      resultCallback({ code: ExportResultCode.SUCCESS });
    } catch (error) {
      resultCallback({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
