// Throwaway applications on either OpenTelemetry JS SDK generation, with the BUILT package
// installed from its tarball (`npm run build -w opentelemetry-instrumentation-pool-leak` first)
// and nothing else but the generation's API and sdk-node: for the tests that must see the
// register entry run on the application's own SDK, 2.x as well as 3.x. Installed under the OS
// temp directory, so Node's resolution never reaches the workspace's node_modules.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { cleanEnv, REPO_ROOT } from './node-process';

/** What the application depends on, per generation (the versions the package README names). */
export const SDK_GENERATIONS = {
  '2.x': ['@opentelemetry/api@~1.9.0', '@opentelemetry/sdk-node@0.209.0'],
  '3.x': ['@opentelemetry/api@~1.10.0', '@opentelemetry/sdk-node@^0.301.0'],
} as const;
export type SdkGeneration = keyof typeof SDK_GENERATIONS;

const PACKAGE_DIR = join(REPO_ROOT, 'packages', 'instrumentation-pool-leak');
const INSTALL_TIMEOUT_MS = 240_000;

function run(file: string, args: readonly string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: cleanEnv(), timeout: INSTALL_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr });
    });
  });
}

export interface SdkApps {
  /** The application directory of a generation, with `files` copied in. */
  readonly dirs: Readonly<Record<SdkGeneration, string>>;
  /** Removes everything installed. */
  remove(): Promise<void>;
}

/**
 * Packs the package once and installs it with each generation's SDK into its own directory,
 * copying `files` (paths from the repository root) next to it. npm's cache keeps this to some
 * seconds per generation; `--prefer-offline` skips asking the registry whether its copy is current.
 */
export async function installSdkApps(files: readonly string[]): Promise<SdkApps> {
  const root = mkdtempSync(join(tmpdir(), 'pool-leak-sdk-apps-'));
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', root], PACKAGE_DIR);
  if (pack.code !== 0) throw new Error(`npm pack failed:\n${pack.stderr}`);
  const [packed] = JSON.parse(pack.stdout) as { filename: string }[];
  if (packed === undefined) throw new Error(`npm pack printed no file:\n${pack.stdout}`);
  const tarball = join(root, packed.filename);
  const dirs = {} as Record<SdkGeneration, string>;
  for (const generation of Object.keys(SDK_GENERATIONS) as SdkGeneration[]) {
    const dir = join(root, `sdk-${generation}`);
    dirs[generation] = dir;
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: `pool-leak-exit-app-${generation}`, version: '1.0.0', private: true }, null, 2)}\n`);
    for (const file of files) copyFileSync(join(REPO_ROOT, file), join(dir, basename(file)));
    const packages = [tarball, ...SDK_GENERATIONS[generation]];
    console.log(`[sdk-app] SDK ${generation}: npm install ${packages.map((name) => (name === tarball ? packed.filename : name)).join(' ')}`);
    const started = performance.now();
    const npm = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packages], dir);
    console.log(`[sdk-app] SDK ${generation}: exit ${npm.code} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (npm.code !== 0) throw new Error(`npm install in ${dir} exited ${npm.code}\n${npm.stdout}\n${npm.stderr}`);
  }
  return { dirs, remove: () => rm(root, { recursive: true, force: true }) };
}
