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
  /** Reports a failed flush or shutdown (diag); never thrown. */
  readonly onError: (what: string, error: unknown) => void;
}

/** The part of `process` this module uses; a test can pass a stand-in. */
export interface ExitingProcess {
  readonly pid: number;
  on(event: FlushedSignal, listener: () => void): unknown;
  once(event: 'beforeExit', listener: () => void): unknown;
  removeListener(event: FlushedSignal, listener: () => void): unknown;
  listeners(event: FlushedSignal): Function[];
  kill(pid: number, signal: FlushedSignal): unknown;
}

/**
 * Makes sure telemetry leaves the process when it ends, without changing how it ends:
 *
 * - The event loop runs dry (`beforeExit`, once): shut the SDK down; the process then exits with
 *   the code it would have had.
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

  const shutdownOnce = (): Promise<void> => {
    shuttingDown ??= options.shutdown().catch((error: unknown) => options.onError('shutdown', error));
    return shuttingDown;
  };

  proc.once('beforeExit', () => {
    void shutdownOnce();
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
        void settleWithin(shutdownOnce(), options.signalTimeoutMs).then(reraise);
      } catch (error) {
        options.onError(`${signal} handling`, error);
      }
    };
    proc.on(signal, onSignal);
  }
}

/** Resolves when `promise` settles or after `ms`, whichever comes first; never rejects. */
function settleWithin(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
