// A throw-away MariaDB server for the mysql2 and mariadb adapter tests: the Debian package's
// real `mariadbd`, on a free loopback port, with a temporary data directory removed at stop.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface MariaDbConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

export interface MariaDbServer extends MariaDbConnection {
  stop(): Promise<void>;
}

const USER = 'pool_leak';
const PASSWORD = 'pool-leak-maria-secret';
const DATABASE = 'pool_leak_test';
const READY_TIMEOUT_MS = 60_000;
const SERVER_BINARIES = ['/usr/sbin/mariadbd', '/usr/sbin/mysqld', '/usr/bin/mariadbd'];
const INSTALL_DB_BINARIES = ['/usr/bin/mariadb-install-db', '/usr/bin/mysql_install_db', '/usr/scripts/mariadb-install-db'];

/** The server binary and its data-dir initialiser, or why they are missing. */
export function findMariaDb(): { server: string; installDb: string } | { missing: string } {
  const server = SERVER_BINARIES.find((path) => existsSync(path));
  const installDb = INSTALL_DB_BINARIES.find((path) => existsSync(path));
  if (server === undefined || installDb === undefined) {
    return { missing: `no MariaDB server binary (looked for ${SERVER_BINARIES.join(', ')}); install it with: apt-get install -y mariadb-server` };
  }
  return { server, installDb };
}

/** Starts `mariadbd` with a fresh data directory, a database and a password-protected user. */
export async function startMariaDb(progress: (line: string) => void = () => {}): Promise<MariaDbServer> {
  const binaries = findMariaDb();
  if ('missing' in binaries) throw new Error(binaries.missing);
  const started = Date.now();
  const baseDir = mkdtempSync(join(tmpdir(), 'pool-leak-mariadb-'));
  const dataDir = join(baseDir, 'data');
  const socket = join(baseDir, 'mariadb.sock');
  const runAs = process.getuid?.() === 0 ? ['--user=root'] : [];
  progress('initialising a MariaDB data directory ...');
  const init = spawnSync(
    binaries.installDb,
    // Own tmpdir: several test runs at once must not share temporary tables in /tmp.
    ['--no-defaults', `--datadir=${dataDir}`, `--tmpdir=${baseDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...runAs],
    { encoding: 'utf8' },
  );
  if (init.status !== 0) {
    rmSync(baseDir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed (exit ${init.status}):\n${(init.stderr || init.stdout).slice(-2000)}`);
  }
  const initFile = join(baseDir, 'init.sql');
  writeFileSync(
    initFile,
    [
      `CREATE DATABASE IF NOT EXISTS ${DATABASE};`,
      `CREATE USER '${USER}'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}';`,
      // ALL on *.* includes CONNECTION ADMIN, which the tests need to KILL a leased connection.
      `GRANT ALL PRIVILEGES ON *.* TO '${USER}'@'127.0.0.1';`,
      '',
    ].join('\n'),
  );
  const port = await freeLoopbackPort();
  progress(`starting mariadbd on 127.0.0.1:${port} ...`);
  const output: string[] = [];
  const child = spawn(
    binaries.server,
    [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--socket=${socket}`,
      `--tmpdir=${baseDir}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${join(baseDir, 'mariadbd.pid')}`,
      `--init-file=${initFile}`,
      '--skip-name-resolve',
      '--max-connections=500',
      '--innodb-buffer-pool-size=32M',
      ...runAs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const remember = (chunk: Buffer) => {
    output.push(chunk.toString());
    if (output.length > 200) output.shift();
  };
  child.stdout?.on('data', remember);
  child.stderr?.on('data', remember);
  const stop = async () => {
    await stopProcess(child);
    rmSync(baseDir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(child, port);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}. Last server output:\n${output.join('').slice(-3000)}`);
  }
  progress(`MariaDB ready on 127.0.0.1:${port} in ${Date.now() - started} ms`);
  return { host: '127.0.0.1', port, user: USER, password: PASSWORD, database: DATABASE, stop };
}

/** Ready = the server accepts a TCP connection and sends its handshake (protocol version 10). */
async function waitUntilReady(child: ChildProcess, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mariadbd exited with code ${child.exitCode} during start-up`);
    if (await answersHandshake(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`mariadbd did not accept connections on 127.0.0.1:${port} within ${READY_TIMEOUT_MS / 1000} s`);
}

function answersHandshake(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ready: boolean) => {
      socket.destroy();
      resolve(ready);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    // Packet header is 4 bytes; byte 4 is the protocol version (10) of a real handshake.
    socket.once('data', (data) => done(data.length > 4 && data[4] === 10));
    socket.connect(port, '127.0.0.1');
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
