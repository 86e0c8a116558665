// The parts of knex's internal classes the knex call-site hooks use (knex 1.x–3.x).

/** `knex/lib/client.js` and the dialect clients that extend it. */
export interface KnexClient {
  /** The tarn pool (a `KnexPool`) once `initializePool` ran. */
  pool?: object;
  /** False when the application handed knex a pool of its own (`connectionPool`). */
  _ownsPool?: boolean;
  /** True on the client of a transaction, whose queries use the transaction's connection. */
  readonly transacting?: boolean;
  /** `postgresql`, `mysql`, `mssql`, ... — set on each dialect's prototype. */
  readonly dialect?: string;
  /** A connection string or an options object; read for host, port and database only. */
  connectionSettings?: unknown;
  queryBuilder(): object;
  raw(...args: unknown[]): object;
  ref(...args: unknown[]): object;
  schemaBuilder(): object;
  initializePool(...args: unknown[]): unknown;
  transaction(...args: unknown[]): object;
}

export interface KnexClientClass {
  readonly prototype: KnexClient;
}

/** `knex/lib/query/querybuilder.js`: `clone()` makes a builder with `new this.constructor(...)`. */
export interface KnexQueryBuilder {
  clone(): object;
}

export interface KnexQueryBuilderClass {
  readonly prototype: KnexQueryBuilder;
}

/** `knex/lib/execution/batch-insert.js` exports this function; knex calls it with its context. */
export type KnexBatchInsert = (this: unknown, ...args: unknown[]) => unknown;

/** `knex/lib/execution/runner.js`: runs one builder, acquiring a connection if it has none. */
export interface KnexRunner {
  readonly builder: object;
  run(...args: unknown[]): unknown;
  stream(...args: unknown[]): unknown;
}

export interface KnexRunnerClass {
  readonly prototype: KnexRunner;
}

/** `knex/lib/execution/transaction.js`: acquires its connection a job after it is created. */
export interface KnexTransaction {
  acquireConnection(...args: unknown[]): unknown;
}

export interface KnexTransactionClass {
  readonly prototype: KnexTransaction;
}
