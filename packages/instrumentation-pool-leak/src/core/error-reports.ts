import type { DiagLogger } from '@opentelemetry/api';

/** Errors reported per place before that place goes quiet, so a broken hook cannot flood logs. */
const REPORTS_PER_PLACE = 1;

/**
 * Where the instrumentation's own failures go: the diag logger, once per place. Nothing here
 * ever reaches the application.
 */
export class ErrorReports {
  private readonly reported = new Map<string, number>();

  constructor(private readonly log: DiagLogger) {}

  report(where: string, error: unknown): void {
    const count = this.reported.get(where) ?? 0;
    if (count >= REPORTS_PER_PLACE) return;
    this.reported.set(where, count + 1);
    this.log.error(`pool-leak: internal error in ${where}; the application is not affected`, error);
  }
}
