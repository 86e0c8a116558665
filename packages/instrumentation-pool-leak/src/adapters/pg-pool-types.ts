// The parts of pg-pool 3.x this adapter touches. Internal to the adapter; never exported.

export type PgConnectCallback = (error: unknown, client?: PgPoolClient, done?: PgRelease) => void;
export type PgRelease = (error?: Error | boolean) => void;

export interface PgPoolClient {
  release: PgRelease;
}

export interface PgPoolOptions {
  host?: string;
  port?: number | string;
  database?: string;
  connectionString?: string;
  max?: number;
}

export interface PgPool {
  readonly options: PgPoolOptions;
  readonly waitingCount: number;
  readonly idleCount: number;
  readonly totalCount: number;
  connect(callback?: PgConnectCallback): Promise<PgPoolClient> | undefined;
  end(callback?: (error?: unknown) => void): Promise<void> | undefined;
}

export interface PgPoolConstructor {
  prototype: PgPool;
}

export interface PgClient {
  query(...args: unknown[]): unknown;
}

export interface PgModule {
  Client?: { prototype: PgClient };
}
