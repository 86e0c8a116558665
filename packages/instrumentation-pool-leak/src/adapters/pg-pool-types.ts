// The parts of pg-pool 3.x this adapter touches. Internal to the adapter; never exported.

export type PgConnectCallback = (error: unknown, client?: PgPoolClient, done?: PgRelease) => void;
export type PgRelease = (error?: Error | boolean) => void;

export interface PgPoolClient {
  release: PgRelease;
  /** pg's own flags, which pg-pool reads at a release to decide whether to close the client. */
  readonly _queryable?: boolean;
  readonly _ending?: boolean;
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
  /** Set by `end()`: from then on, every released client is closed. */
  readonly ending?: boolean;
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
