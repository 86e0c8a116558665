/** The signals after which telemetry is flushed. */
export const FLUSHED_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
export type FlushedSignal = (typeof FLUSHED_SIGNALS)[number];

export interface ExitFlushOptions {
  /** Exports what is buffered and keeps the SDK running. */
  readonly flush: () => Promise<void>;
  /** Ends open leases, exports everything and stops the SDK; called at most once. */
  readonly shutdown: () => Promise<void>;
  /** How long a signal waits for the shutdown before the process ends anyway. */
  readonly signalTimeoutMs: number;
  /**
   * How long a normal exit waits for the shutdown after the last sign of progress (the start of
   * the exit, or an export that succeeded), never longer than `signalTimeoutMs` in all. A
   * collector that refuses or never answers then costs this much, not one exporter timeout per
   * buffered batch; one that answers, however slowly, gets everything.
   */
  readonly exitIdleTimeoutMs: number;
  /** When an export last succeeded (`performance.now()`); undefined when none did. */
  readonly lastSuccessAt?: () => number | undefined;
  /** Reports a failed flush or shutdown (diag); never thrown. */
  readonly onError: (what: string, error: unknown) => void;
  /**
   * The shutdown failed (`error`) or was given up after `waitedMs`: telemetry did not leave.
   * Called at most once.
   */
  readonly onUndelivered: (outcome: UndeliveredOutcome) => void;
}

export type UndeliveredOutcome = { readonly error: unknown } | { readonly waitedMs: number };

/** The part of `process` this module uses; a test can pass a stand-in. */
export interface ExitingProcess {
  readonly pid: number;
  on(event: FlushedSignal, listener: () => void): unknown;
  once(event: 'beforeExit', listener: () => void): unknown;
  removeListener(event: FlushedSignal, listener: () => void): unknown;
  listeners(event: FlushedSignal): Function[];
  kill(pid: number, signal: FlushedSignal): unknown;
  /** Ends the process with `process.exitCode`, as running dry would have. */
  exit(): unknown;
}

/**
 * Makes sure telemetry leaves the process when it ends, without changing how it ends:
 *
 * - The event loop runs dry (`beforeExit`, once): shut the SDK down; the process then exits with
 *   the code it would have had. If the shutdown stalls (`exitIdleTimeoutMs` without progress: a
 *   collector that refuses, or one that accepts and never answers, while the exporters retry),
 *   the process exits at that point with that same code instead of after the exporters' own
 *   timeouts, and `onUndelivered` says so.
 * - SIGTERM / SIGINT that the application does not handle: shut the SDK down (bounded by
 *   `signalTimeoutMs`), then raise the same signal again with no listener of ours left, so Node's
 *   default applies and the process ends by that signal, as it would have without us. A second
 *   signal during the shutdown ends the process at once, as an impatient Ctrl-C expects.
 * - A signal the application handles itself: only flush. The application decides what happens
 *   next, typically draining requests, and the spans of that drain are still recorded; the SDK
 *   shuts down when the loop runs dry.
 */
export function flushOnExit(options: ExitFlushOptions, proc: ExitingProcess = process): void {
  let shuttingDown: Promise<void> | undefined;
  let signalled = false;
  let undeliveredReported = false;

  const reportUndelivered = (outcome: UndeliveredOutcome): void => {
    if (undeliveredReported) return;
    undeliveredReported = true;
    try {
      options.onUndelivered(outcome);
    } catch (error) {
      options.onError('reporting undelivered telemetry', error);
    }
  };

  const shutdownOnce = (): Promise<void> => {
    shuttingDown ??= options.shutdown().catch((error: unknown) => {
      options.onError('shutdown', error);
      reportUndelivered({ error });
    });
    return shuttingDown;
  };

  proc.once('beforeExit', () => {
    const started = performance.now();
    void settleWhileProgressing(shutdownOnce(), options.exitIdleTimeoutMs, options.signalTimeoutMs, options.lastSuccessAt).then((settled) => {
      if (settled) return;
      reportUndelivered({ waitedMs: performance.now() - started });
      try {
        proc.exit();
      } catch (error) {
        options.onError('exit after the shutdown stalled', error);
      }
    });
  });

  for (const signal of FLUSHED_SIGNALS) {
    const onSignal = (): void => {
      try {
        if (proc.listeners(signal).some((listener) => listener !== onSignal)) {
          options.flush().catch((error: unknown) => options.onError('flush', error));
          return;
        }
        const reraise = (): void => {
          try {
            proc.removeListener(signal, onSignal);
            proc.kill(proc.pid, signal);
          } catch (error) {
            options.onError(`raising ${signal} again`, error);
          }
        };
        if (signalled) {
          reraise();
          return;
        }
        signalled = true;
        void settleWhileProgressing(shutdownOnce(), options.signalTimeoutMs, options.signalTimeoutMs).then((settled) => {
          if (!settled) reportUndelivered({ waitedMs: options.signalTimeoutMs });
          reraise();
        });
      } catch (error) {
        options.onError(`${signal} handling`, error);
      }
    };
    proc.on(signal, onSignal);
  }
}

/**
 * Resolves true when `promise` settles (either way), false once `idleMs` passed since the start
 * or the last success reported by `lastSuccessAt`, or `maxMs` since the start, whichever comes
 * first. Never rejects.
 */
function settleWhileProgressing(
  promise: Promise<void>,
  idleMs: number,
  maxMs: number,
  lastSuccessAt: () => number | undefined = () => undefined,
): Promise<boolean> {
  const start = performance.now();
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const check = (): void => {
      const now = performance.now();
      const deadline = Math.min(Math.max(start, lastSuccessAt() ?? start) + idleMs, start + maxMs);
      if (now >= deadline) {
        resolve(false);
        return;
      }
      timer = setTimeout(check, deadline - now);
    };
    const settle = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(settle, settle);
    check();
  });
}
