// Starts one real PostgreSQL for the whole test run and hands its address to every test file.
import type { TestProject } from 'vitest/node';
import { startPostgres, type PostgresServer } from '../../packages/exporter-demo/src/postgres-server';
import { keepIntendedExitCode } from './exit-code';

export interface PostgresConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: PostgresConnection;
  }
}

let server: PostgresServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  keepIntendedExitCode();
  server = await startPostgres({ progress: (line) => console.log(`[test setup] ${line}`) });
  const { host, port, user, password, database } = server;
  project.provide('postgres', { host, port, user, password, database });
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
