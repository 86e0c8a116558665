/** The signals after which telemetry is flushed. */
export const FLUSHED_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
export type FlushedSignal = (typeof FLUSHED_SIGNALS)[number];

/** How the exit's shutdown ended: settled (with the error it failed with, if any), or given up after `waitedMs`. */
export type ShutdownOutcome = { readonly settled: true; readonly error?: unknown } | { readonly settled: false; readonly waitedMs: number };

export interface ExitFlushOptions {
  /** Exports what is buffered and keeps the SDK running. */
  readonly flush: () => Promise<void>;
  /** Ends open leases, exports everything and stops the SDK; called at most once. */
  readonly shutdown: () => Promise<void>;
  /**
   * How long the exit (a normal one, or a signal's) waits for the shutdown after the last sign
   * of progress: its start, or `lastProgressAt`. A collector that refuses, never answers
   * or keeps answering 429/503 then costs this much, not the exporters' timeouts and retries; one
   * that answers, however slowly, gets everything, up to `maxWaitMs`.
   */
  readonly idleTimeoutMs: number;
  /** The longest the exit waits for the shutdown in all, progress or not. */
  readonly maxWaitMs: number;
  /** When the exports last made progress (`performance.now()`, e.g. one succeeded); undefined when none did. */
  readonly lastProgressAt?: () => number | undefined;
  /** Reports a failed flush or shutdown (diag); never thrown. */
  readonly onError: (what: string, error: unknown) => void;
  /**
   * How the exit's shutdown ended: settled (with its error, if it failed) or given up after
   * `waitedMs`. Called once, before the process ends; not for a signal the application handles.
   */
  readonly onEnd: (outcome: ShutdownOutcome) => void;
}

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
 *   the code it would have had. If the shutdown stalls (`idleTimeoutMs` without progress: a
 *   collector that refuses, accepts and never answers, or answers 429/503 while the exporters
 *   retry), the process exits at that point with that same code instead of after the exporters'
 *   own timeouts and retries.
 * - SIGTERM / SIGINT that the application does not handle: shut the SDK down, bounded the same
 *   way, then raise the same signal again with no listener of ours left, so Node's default
 *   applies and the process ends by that signal, as it would have without us. A second signal
 *   during the shutdown ends the process at once, as an impatient Ctrl-C expects.
 * - A signal the application handles itself: only flush. The application decides what happens
 *   next, typically draining requests, and the spans of that drain are still recorded; the SDK
 *   shuts down when the loop runs dry.
 *
 * Either way `onEnd` learns how the shutdown ended, once, before the process ends.
 */
export function flushOnExit(options: ExitFlushOptions, proc: ExitingProcess = process): void {
  let shuttingDown: Promise<ShutdownOutcome> | undefined;
  let signalled = false;
  let ended = false;

  const reportEnd = (outcome: ShutdownOutcome): void => {
    if (ended) return;
    ended = true;
    try {
      options.onEnd(outcome);
    } catch (error) {
      options.onError('reporting how the shutdown ended', error);
    }
  };

  const shutdownOnce = (): Promise<ShutdownOutcome> => {
    shuttingDown ??= options.shutdown().then(
      (): ShutdownOutcome => ({ settled: true }),
      (error: unknown): ShutdownOutcome => {
        options.onError('shutdown', error);
        return { settled: true, error };
      },
    );
    return shuttingDown;
  };

  /** The shutdown's outcome, or given up once it stalls; never rejects. */
  const boundedShutdown = async (): Promise<ShutdownOutcome> => {
    const started = performance.now();
    const settled = await settleWhileProgressing(shutdownOnce(), options.idleTimeoutMs, options.maxWaitMs, options.lastProgressAt);
    return settled ?? { settled: false, waitedMs: performance.now() - started };
  };

  proc.once('beforeExit', () => {
    void boundedShutdown().then((outcome) => {
      reportEnd(outcome);
      if (outcome.settled) return;
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
        void boundedShutdown().then((outcome) => {
          reportEnd(outcome);
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
 * Resolves with what `promise` resolves to, or with undefined once `idleMs` passed since the
 * start or the last progress reported by `lastProgressAt`, or `maxMs` since the start, whichever
 * comes first. `promise` must not reject.
 */
function settleWhileProgressing<T>(
  promise: Promise<T>,
  idleMs: number,
  maxMs: number,
  lastProgressAt: () => number | undefined = () => undefined,
): Promise<T | undefined> {
  const start = performance.now();
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const check = (): void => {
      const now = performance.now();
      const deadline = Math.min(Math.max(start, lastProgressAt() ?? start) + idleMs, start + maxMs);
      if (now >= deadline) {
        resolve(undefined);
        return;
      }
      timer = setTimeout(check, deadline - now);
    };
    void promise.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
    check();
  });
}
