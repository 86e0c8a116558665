import { SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';

/** ExportResultCode.SUCCESS of @opentelemetry/core, without depending on it for one number. */
const SUCCESS = 0;
/** Distinct call sites kept; later ones are counted under "other call sites". */
const MAX_CALL_SITES = 100;
const STACK_LINES_SHOWN = 6;

interface CallSiteRow {
  readonly site: string;
  readonly functionName: string;
  count: number;
  readonly stack: string;
}

/** One ranked row of the report. */
export interface LeakedCallSite {
  readonly site: string;
  readonly functionName: string;
  readonly count: number;
  readonly stack: string;
}

/**
 * A SpanExporter that keeps no spans, only counts: checkout spans seen, checkouts that failed,
 * and leases that were still open when the tracer provider shut down, ranked by call site.
 * Register it next to any other exporter to get the console report for any application.
 */
export class LeakReportExporter implements SpanExporter {
  private readonly sites = new Map<string, CallSiteRow>();
  private checkouts = 0;
  private failedCheckouts = 0;
  private otherSites = 0;

  export(spans: ReadableSpan[], resultCallback: (result: { code: number }) => void): void {
    for (const span of spans) this.record(span);
    resultCallback({ code: SUCCESS });
  }

  async shutdown(): Promise<void> {}

  async forceFlush(): Promise<void> {}

  /** Call sites of leaked leases, most leases first. */
  leakedCallSites(): LeakedCallSite[] {
    return [...this.sites.values()].sort((a, b) => b.count - a.count);
  }

  /** The console report; its first line names the leaking function. */
  format(): string {
    const rows = this.leakedCallSites();
    const lines: string[] = [];
    if (rows.length === 0) lines.push('No leaked connections: every checkout was checked in.');
    for (const [index, row] of rows.entries()) {
      lines.push(`${index + 1}. ${row.functionName} leaked ${row.count} connection(s), taken at ${row.site}`);
      for (const frame of row.stack.split('\n').slice(0, STACK_LINES_SHOWN)) lines.push(`     ${frame.trim()}`);
    }
    if (this.otherSites > 0) lines.push(`   ... and ${this.otherSites} leases from other call sites`);
    lines.push('', `${this.checkouts} checkout spans, ${this.failedCheckouts} failed checkouts (pool exhausted or closed).`);
    return lines.join('\n');
  }

  private record(span: ReadableSpan): void {
    if (!span.name.endsWith(' checkout')) return;
    this.checkouts++;
    if (span.status.code !== SpanStatusCode.ERROR) return;
    // A held lease has pool.held_ms; a checkout that never got a connection does not.
    if (span.attributes['pool.held_ms'] === undefined) {
      this.failedCheckouts++;
      return;
    }
    const functionName = String(span.attributes['code.function.name'] ?? '<anonymous>');
    const site = `${functionName} (${String(span.attributes['code.file.path'])}:${String(span.attributes['code.line.number'])})`;
    const row = this.sites.get(site);
    if (row !== undefined) row.count++;
    else if (this.sites.size >= MAX_CALL_SITES) this.otherSites++;
    else this.sites.set(site, { site, functionName, count: 1, stack: String(span.attributes['code.stacktrace'] ?? '') });
  }
}
