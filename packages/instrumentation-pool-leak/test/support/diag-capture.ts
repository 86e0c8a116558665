// Captures what reaches the OTel diag logger, every argument of every line: the instrumentation
// logs through a component logger, which puts its namespace first and the message after it.
import { diag, DiagLogLevel } from '@opentelemetry/api';

export interface DiagCapture {
  /** Each warn/error line so far, its arguments joined by spaces (errors by their message). */
  readonly lines: string[];
  /** The lines that contain `text`. */
  linesWith(text: string): string[];
  /** Restores the no-op logger. */
  stop(): void;
}

/** Starts recording warn and error lines of the global diag logger. */
export function captureDiag(): DiagCapture {
  const lines: string[] = [];
  const record = (...args: unknown[]) => {
    lines.push(args.map((arg) => (arg instanceof Error ? `${arg.name}: ${arg.message}` : String(arg))).join(' '));
  };
  diag.setLogger({ error: record, warn: record, info: () => {}, debug: () => {}, verbose: () => {} }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  return {
    lines,
    linesWith: (text) => lines.filter((line) => line.includes(text)),
    stop: () => diag.disable(),
  };
}
