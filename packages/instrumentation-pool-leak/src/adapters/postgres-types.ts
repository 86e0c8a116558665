/** The parts of postgres.js 3.x (`postgres`) the postgres adapter touches. */

/** The parsed options one `postgres()` instance shares with all its connections: the pool key. */
export interface PostgresOptions {
  readonly host?: readonly string[];
  readonly port?: readonly number[];
  readonly database?: string;
  readonly max?: number;
}

/** The function that hands a query to a connection (the pool's, a reserved one's, a transaction's). */
export type PostgresHandler = (query: PostgresQuery) => unknown;

/** `Query` (query.js): a Promise subclass that runs when first awaited or `execute()`d. */
export interface PostgresQuery {
  readonly handler: PostgresHandler;
  readonly executed: boolean;
  readonly strings: readonly string[];
  readonly cursorRows?: number;
  resolve: (value: unknown) => unknown;
  reject: (error: unknown) => unknown;
  handle(): Promise<void>;
}

/** The `Query` class: constructed by `sql` for each tagged template, `unsafe()` and `file()`. */
export interface PostgresQueryClass {
  new (...args: unknown[]): PostgresQuery;
  readonly prototype: PostgresQuery;
}

export interface PostgresQueryModule {
  /** Replaced by a subclass that remembers its call site (index.js reads it after the patch). */
  Query: PostgresQueryClass;
}

/** A connection (connection.js): a plain object; the pool calls these as its methods. */
export interface PostgresConnection {
  execute: (query: PostgresQuery) => unknown;
}

export type ConnectionFactory = (this: unknown, ...args: unknown[]) => PostgresConnection;

/** The `sql` function `postgres()` returns, and the ones `reserve()` and `begin()` hand out. */
export interface Sql {
  readonly options: PostgresOptions;
  unsafe(text: string): PostgresQuery;
  reserve(this: unknown, ...args: unknown[]): Promise<ReservedSql>;
  begin(this: unknown, ...args: unknown[]): Promise<unknown>;
  end(this: unknown, ...args: unknown[]): Promise<unknown>;
}

export interface ReservedSql extends Sql {
  release(this: unknown, ...args: unknown[]): unknown;
}

export type PostgresFactory = (this: unknown, ...args: unknown[]) => Sql;
