// Runs `node <args>` from the repository root for the child-process tests (fixture apps, the
// register entry, the demo), bounded in time, with everything it printed kept for assertion
// messages.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** How a child ended, and what it printed. */
export interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Prefix for assertion messages: the command, how it ended, its stdout and stderr. */
  readonly context: string;
}

export interface RunningNode {
  /** Resolves once the child printed exactly this line on stdout; rejects if it ends first. */
  stdoutLine(line: string): Promise<void>;
  kill(signal: NodeJS.Signals): void;
  readonly ended: Promise<Ended>;
}

export interface NodeOptions {
  /** Added to {@link cleanEnv}'s environment. */
  readonly env?: Record<string, string>;
  /** SIGKILL after this long. Keep it under the test's timeout so a hang fails with the output. */
  readonly timeoutMs: number;
  /** Working directory; default the repository root. */
  readonly cwd?: string;
  /** The Node binary; default this runner's (e.g. another major's, see node-binary.ts). */
  readonly node?: string;
  /** Written to the child's stdin, which is then closed (a script piped into `node`). */
  readonly stdin?: string;
}

/**
 * The runner's environment without what would change a child's behaviour: NODE_OPTIONS (the
 * runner's own flags and loaders), OTEL_* (e.g. OTEL_POOL_LEAK_ENABLED=false in a developer's
 * shell), PG* (settings of some other server) and npm_* (npm's own variables).
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'NODE_OPTIONS' || name.startsWith('OTEL_') || name.startsWith('PG') || name.startsWith('npm_')) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

/** The test PostgreSQL as the PG* variables pg reads by itself. */
export function postgresEnv(): Record<string, string> {
  const { host, port, user, password, database } = inject('postgres');
  return { PGHOST: host, PGPORT: String(port), PGUSER: user, PGPASSWORD: password, PGDATABASE: database };
}

/** Starts `node <args>` (this runner's Node unless told) in the repository root unless told. */
export function startNode(args: readonly string[], options: NodeOptions): RunningNode {
  const child = spawn(options.node ?? process.execPath, args, {
    cwd: options.cwd ?? REPO_ROOT,
    env: cleanEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // Closed at once (end of input, as /dev/null would be) after what the test pipes in, if
  // anything. A child that ended first makes the write fail; that is not the test's subject.
  child.stdin.on('error', () => {});
  child.stdin.end(options.stdin ?? '');
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const lineWaiters: { line: string; resolve: () => void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    const lines = stdout.split('\n');
    for (const waiter of lineWaiters.splice(0)) {
      if (lines.includes(waiter.line)) waiter.resolve();
      else lineWaiters.push(waiter);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs);

  const ended = new Promise<Ended>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null, failure?: Error) => {
      clearTimeout(timer);
      const how = failure
        ? `did not run: ${failure.message}`
        : timedOut
          ? `was killed after ${options.timeoutMs} ms`
          : signal !== null
            ? `ended by ${signal}`
            : `exited with ${code}`;
      const context = `node ${args.join(' ')} ${how}; stdout:\n${stdout || '(empty)'}\nstderr:\n${stderr || '(empty)'}\n`;
      resolve({ code, signal, stdout, stderr, context });
    };
    child.on('error', (error) => finish(null, null, error));
    child.on('close', (code, signal) => finish(code, signal));
  });

  return {
    stdoutLine: (line) =>
      new Promise<void>((resolve, reject) => {
        if (stdout.split('\n').includes(line)) return resolve();
        lineWaiters.push({ line, resolve });
        // A child that ends first never prints the line: fail with what it did print.
        void ended.then((end) => reject(new Error(`no stdout line "${line}": ${end.context}`)));
      }),
    kill: (signal) => {
      child.kill(signal);
    },
    ended,
  };
}

/** Runs `node <args>` to its end. */
export function runNode(args: readonly string[], options: NodeOptions): Promise<Ended> {
  return startNode(args, options).ended;
}
