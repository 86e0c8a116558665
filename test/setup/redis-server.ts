// A throw-away Redis server for the node-redis adapter tests: the Debian package's real
// `redis-server`, on a free loopback port, password-protected, with a temporary directory
// removed at stop and no persistence.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort, startServerProcess } from './server-process.ts';

export interface RedisConnection {
  readonly host: string;
  readonly port: number;
  readonly password: string;
}

export interface RedisServer extends RedisConnection {
  stop(): Promise<void>;
}

const PASSWORD = 'pool-leak-redis-secret';
const READY_TIMEOUT_MS = 30_000;
const SERVER_BINARIES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server'];

/** The server binary, or why it is missing. */
export function findRedis(): { server: string } | { missing: string } {
  const server = SERVER_BINARIES.find((path) => existsSync(path));
  if (server === undefined) {
    return { missing: `no Redis server binary (looked for ${SERVER_BINARIES.join(', ')}); install it with: apt-get install -y redis-server` };
  }
  return { server };
}

/** Starts `redis-server` on a free loopback port with a password and a temporary directory. */
export async function startRedis(progress: (line: string) => void = () => {}): Promise<RedisServer> {
  const found = findRedis();
  if ('missing' in found) throw new Error(found.missing);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'pool-leak-redis-'));
  const port = await freeLoopbackPort();
  progress(`starting redis-server on 127.0.0.1:${port} ...`);
  const server = await startServerProcess({
    name: 'redis-server',
    binary: found.server,
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--requirepass', PASSWORD, '--daemonize', 'no'],
    port,
    tempDir: dir,
    readyTimeoutMs: READY_TIMEOUT_MS,
    // PONG or NOAUTH: either way the server serves commands.
    answers: (socket, ready) => {
      socket.once('data', (data) => ready(/^[+-]/.test(data.toString())));
      socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    },
  });
  progress(`Redis ready on 127.0.0.1:${port} in ${Date.now() - started} ms`);
  return { host: '127.0.0.1', port, password: PASSWORD, stop: () => server.stop() };
}
