// What every throw-away test server shares: a free loopback port, the child process with the
// tail of its output kept for error messages, a readiness probe polled until a deadline, and a
// stop that removes the server's temporary directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';

export interface ServerProcessOptions {
  /** As the progress lines and errors name it, e.g. `mariadbd`. */
  readonly name: string;
  readonly binary: string;
  readonly args: readonly string[];
  readonly port: number;
  /** Removed at stop, also when the start fails. */
  readonly tempDir: string;
  readonly readyTimeoutMs: number;
  /** Whether the server answers on its port as a ready server of its kind does. */
  readonly answers: (socket: Socket, ready: (answered: boolean) => void) => void;
}

/** A started server: stopped with SIGTERM (SIGKILL after 15 s), its temporary directory removed. */
export interface ServerProcess {
  stop(): Promise<void>;
}

const OUTPUT_CHUNKS_KEPT = 200;
const OUTPUT_CHARS_SHOWN = 3000;
const KILL_AFTER_MS = 15_000;

/** Spawns the server and resolves once it answers; rejects with its last output if it never does. */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const output: string[] = [];
  const child = spawn(options.binary, options.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const remember = (chunk: Buffer) => {
    output.push(chunk.toString());
    if (output.length > OUTPUT_CHUNKS_KEPT) output.shift();
  };
  child.stdout?.on('data', remember);
  child.stderr?.on('data', remember);
  const stop = async () => {
    await stopProcess(child);
    rmSync(options.tempDir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(child, options);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}. Last server output:\n${output.join('').slice(-OUTPUT_CHARS_SHOWN)}`);
  }
  return { stop };
}

async function waitUntilReady(child: ChildProcess, { name, port, readyTimeoutMs, answers }: ServerProcessOptions): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode} during start-up`);
    if (await probe(port, answers)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${name} did not accept connections on 127.0.0.1:${port} within ${readyTimeoutMs / 1000} s`);
}

function probe(port: number, answers: ServerProcessOptions['answers']): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ready: boolean) => {
      socket.destroy();
      resolve(ready);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    answers(socket, done);
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
  await exited;
  clearTimeout(timer);
}

/** A loopback port nothing listens on right now. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
