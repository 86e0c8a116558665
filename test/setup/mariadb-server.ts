// A throw-away MariaDB server for the mysql2 and mariadb adapter tests: the Debian package's
// real `mariadbd`, on a free loopback port, with a temporary data directory removed at stop.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort, startServerProcess } from './server-process.ts';

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
  const server = await startServerProcess({
    name: 'mariadbd',
    binary: binaries.server,
    args: [
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
    port,
    tempDir: baseDir,
    readyTimeoutMs: READY_TIMEOUT_MS,
    // A real handshake: 4 bytes of packet header, then protocol version 10.
    answers: (socket, ready) => {
      socket.once('data', (data) => ready(data.length > 4 && data[4] === 10));
      socket.connect(port, '127.0.0.1');
    },
  });
  progress(`MariaDB ready on 127.0.0.1:${port} in ${Date.now() - started} ms`);
  return { host: '127.0.0.1', port, user: USER, password: PASSWORD, database: DATABASE, stop: () => server.stop() };
}
