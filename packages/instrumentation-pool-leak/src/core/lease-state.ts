import type { Attributes } from '@opentelemetry/api';
import { DB_SYSTEM_NAME_VALUE_POSTGRESQL } from '@opentelemetry/semantic-conventions';
import { summarizeQuery } from '../signals/query-summary';
import { ATTR_DB_QUERY_SUMMARY, ATTR_POOL_LEASE_IDLE_MS, ATTR_POOL_LEASE_STATE, ATTR_POOL_LEASE_STATEMENTS } from '../signals/semconv';

/** Values of `pool.lease.state`. */
export type LeaseStateName = 'busy' | 'idle' | 'idle_in_transaction' | 'idle_in_transaction_aborted';

/**
 * A connection's transaction status as its server reports it: PostgreSQL's ReadyForQuery
 * (`I` idle, `T` in a transaction, `E` in a failed transaction that only a ROLLBACK ends),
 * MySQL and MariaDB's `SERVER_STATUS_IN_TRANS` flag of OK packets (which know no aborted state).
 */
export type ServerTransactionStatus = 'idle' | 'in_transaction' | 'aborted';

/**
 * Reads the server's transaction status that a driver keeps for `connection` (pg's
 * `getTransactionStatus()`), or undefined when it keeps none. Called only when a lease is
 * reported, never per statement; it must not throw.
 */
export type ServerStatusReader = (connection: unknown) => ServerTransactionStatus | undefined;

/** What a lease was doing at one moment, built only when it is reported. */
export interface LeaseStateSnapshot {
  readonly state: LeaseStateName;
  /** Milliseconds busy (a statement in flight) or idle (none), up to the moment asked. */
  readonly stateMs: number;
  readonly statements: number;
  /** `db.query.summary` of the last statement, when one was seen and it could be summarised. */
  readonly lastSummary: string | undefined;
}

/** The state of an idle connection in each server transaction status. */
const IDLE_STATE: Readonly<Record<ServerTransactionStatus, LeaseStateName>> = {
  idle: 'idle',
  in_transaction: 'idle_in_transaction',
  aborted: 'idle_in_transaction_aborted',
};

// What a statement does to the transaction when the server accepts it, told from its text.
const NO_EFFECT = 0;
const OPENS = 1;
const CLOSES = 2;
/** ROLLBACK TO SAVEPOINT: the transaction stays, and on PostgreSQL is no longer aborted. */
const ROLLS_BACK_TO_SAVEPOINT = 3;
type TransactionEffect = typeof NO_EFFECT | typeof OPENS | typeof CLOSES | typeof ROLLS_BACK_TO_SAVEPOINT;

// First letters of the statements that open or close a transaction: BEGIN, START TRANSACTION,
// COMMIT, ROLLBACK, END, ABORT. Any other statement is told apart by one or two character reads.
const CHAR_A = 0x61;
const CHAR_B = 0x62;
const CHAR_C = 0x63;
const CHAR_E = 0x65;
const CHAR_R = 0x72;
const CHAR_S = 0x73;
const CHAR_T = 0x74;
const LOWER_CASE_BIT = 0x20;

const OPENS_TRANSACTION = /^(?:BEGIN|START\s+TRANSACTION)\b/i;
const ROLLS_BACK_TO = /^ROLLBACK\s+(?:(?:WORK|TRANSACTION)\s+)?TO\b/i;
// COMMIT AND CHAIN opens the next transaction at once: no change.
const CLOSES_TRANSACTION = /^(?:COMMIT|END|ROLLBACK|ABORT)\b(?!.*\bAND\s+CHAIN\b)/is;

/**
 * The statements of one lease, kept in O(1) per statement without allocating: how many, whether
 * one is in flight and since when, when the last one ended, the transaction status, and a
 * reference to the last statement as the library was given it. The summary of that statement is
 * computed only when the lease is reported; {@link StatementActivity.clear} drops the reference.
 *
 * The transaction status is the server's where the driver reports it, and wins then: read when
 * the lease is reported ({@link StatementActivity.readStatusWith}, pg) or given with each answer
 * ({@link StatementActivity.settled}, MySQL OK packets). Otherwise it is told from the statements
 * and their outcome, as the server would decide: a statement opens or closes a transaction only
 * once the server accepted it (a failed BEGIN opens nothing). On PostgreSQL
 * (`failureAbortsTransaction`) any failure inside a transaction aborts it, and a failed COMMIT
 * ends it (the server rolls back); MySQL and MariaDB keep the transaction as it was.
 */
export class StatementActivity {
  statements = 0;
  private inFlight = 0;
  /** `performance.now()` when the connection last went from no statement in flight to one. */
  private busySince = 0;
  /** `performance.now()` when the last statement settled; 0 before any did. */
  private lastSettledAt = 0;
  private lastStatement: unknown;
  private transaction: ServerTransactionStatus = 'idle';
  /** Statements answered so far: the connection answers in the order it was asked. */
  private answered = 0;
  /** The last transaction statement sent and its position, until it is answered. */
  private pendingEffect: TransactionEffect = NO_EFFECT;
  private pendingAt = 0;
  private statusReader: ServerStatusReader | undefined;

  /** On PostgreSQL an error inside a transaction aborts it; elsewhere the transaction stays as it was. */
  private readonly failureAbortsTransaction: boolean;

  /** `dbSystem`: the pool's `db.system.name`, when known. */
  constructor(dbSystem?: string) {
    this.failureAbortsTransaction = dbSystem === DB_SYSTEM_NAME_VALUE_POSTGRESQL;
  }

  /** A statement was sent. `statement` is what the library was given (text, or an object with `text`/`sql`). */
  issued(statement: unknown, now: number): void {
    this.statements++;
    if (this.inFlight++ === 0) this.busySince = now;
    this.lastStatement = statement;
    const text = statementText(statement);
    if (text === undefined || !mayChangeTransaction(text)) return;
    const effect = transactionEffect(text);
    if (effect === NO_EFFECT) return;
    this.pendingEffect = effect;
    this.pendingAt = this.statements;
  }

  /**
   * A statement finished: `failed` when the server (or the driver) answered with an error;
   * `status` when the answer carried the server's transaction status, which then wins. Extra
   * calls never go below zero in flight.
   */
  settled(now: number, failed = false, status?: ServerTransactionStatus): void {
    if (this.inFlight === 0) return;
    this.inFlight--;
    this.lastSettledAt = now;
    let effect: TransactionEffect = NO_EFFECT;
    if (++this.answered === this.pendingAt) {
      effect = this.pendingEffect;
      this.pendingEffect = NO_EFFECT;
    }
    this.transaction = status ?? this.afterAnswer(effect, failed);
  }

  /** The driver keeps the server's own status for the connection: it is read at each report and wins. */
  readStatusWith(reader: ServerStatusReader): void {
    this.statusReader = reader;
  }

  /** The library's own transaction API opened a transaction without SQL text through a hooked method. */
  transactionBegan(): void {
    this.transaction = 'in_transaction';
  }

  /** The library's own transaction API committed or rolled back. */
  transactionEnded(): void {
    this.transaction = 'idle';
  }

  /** The state at `now` of a lease granted at `grantedAt` on `connection`. */
  snapshot(now: number, grantedAt: number, connection?: unknown): LeaseStateSnapshot {
    const busy = this.inFlight > 0;
    const since = busy ? this.busySince : Math.max(this.lastSettledAt, grantedAt);
    return {
      state: busy ? 'busy' : IDLE_STATE[this.transactionOf(connection)],
      stateMs: Math.max(0, now - since),
      statements: this.statements,
      lastSummary: this.statements === 0 ? undefined : summarizeQuery(statementText(this.lastStatement)),
    };
  }

  /** Drops the reference to the last statement (its text and parameters): the lease ended. */
  clear(): void {
    this.lastStatement = undefined;
  }

  private transactionOf(connection: unknown): ServerTransactionStatus {
    const fromServer = this.statusReader !== undefined && connection !== undefined ? this.statusReader(connection) : undefined;
    return fromServer ?? this.transaction;
  }

  /** The transaction after an answer without the server's status, as the server decides it. */
  private afterAnswer(effect: TransactionEffect, failed: boolean): ServerTransactionStatus {
    const current = this.transaction;
    if (!failed) {
      if (effect === OPENS) return 'in_transaction';
      if (effect === CLOSES) return 'idle';
      if (effect === ROLLS_BACK_TO_SAVEPOINT) return current === 'idle' ? 'idle' : 'in_transaction';
      return current;
    }
    if (!this.failureAbortsTransaction || current === 'idle') return current;
    // PostgreSQL rolls back a transaction whose COMMIT fails (a deferred constraint, a
    // serialization failure); any other failure inside a transaction aborts it.
    return effect === CLOSES ? 'idle' : 'aborted';
  }
}

function transactionEffect(text: string): TransactionEffect {
  const trimmed = text.trimStart();
  if (OPENS_TRANSACTION.test(trimmed)) return OPENS;
  if (ROLLS_BACK_TO.test(trimmed)) return ROLLS_BACK_TO_SAVEPOINT;
  return CLOSES_TRANSACTION.test(trimmed) ? CLOSES : NO_EFFECT;
}

/** The SQL text of a statement as pg (`text`), mysql2 and mariadb (`sql`) take it. */
export function statementText(statement: unknown): string | undefined {
  if (typeof statement === 'string') return statement;
  if (typeof statement !== 'object' || statement === null) return undefined;
  const { text, sql } = statement as { text?: unknown; sql?: unknown };
  if (typeof text === 'string') return text;
  return typeof sql === 'string' ? sql : undefined;
}

/** The cheap test run on every statement: only a few first letters can start a transaction statement. */
function mayChangeTransaction(text: string): boolean {
  let index = 0;
  // Leading white space (some ORMs start with a newline): skipped only when present.
  while (isWhiteSpace(text.charCodeAt(index))) index++;
  const first = text.charCodeAt(index) | LOWER_CASE_BIT;
  if (first === CHAR_S) return (text.charCodeAt(index + 1) | LOWER_CASE_BIT) === CHAR_T;
  return first === CHAR_B || first === CHAR_C || first === CHAR_R || first === CHAR_E || first === CHAR_A;
}

function isWhiteSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x09 || code === 0x0d;
}

/** `pool.lease.*` and `db.query.summary` of a leak report. */
export function leaseStateAttributes(snapshot: LeaseStateSnapshot): Attributes {
  const attributes: Attributes = {
    [ATTR_POOL_LEASE_STATE]: snapshot.state,
    [ATTR_POOL_LEASE_IDLE_MS]: snapshot.state === 'busy' ? 0 : Math.round(snapshot.stateMs),
    [ATTR_POOL_LEASE_STATEMENTS]: snapshot.statements,
  };
  if (snapshot.lastSummary !== undefined) attributes[ATTR_DB_QUERY_SUMMARY] = snapshot.lastSummary;
  return attributes;
}

/** How each state reads in a holders list, around its milliseconds (as `pg_stat_activity` words them). */
const DESCRIPTIONS: Readonly<Record<LeaseStateName, readonly [string, string]>> = {
  busy: ['busy ', ' ms'],
  idle: ['idle ', ' ms'],
  idle_in_transaction: ['idle ', ' ms in transaction'],
  idle_in_transaction_aborted: ['idle ', ' ms in transaction (aborted)'],
};

/**
 * `busy 12 ms` | `idle 2600 ms` | `idle 2600 ms in transaction` | `idle 2600 ms in transaction
 * (aborted)`, then `, last INSERT entries` when known.
 */
export function describeLeaseState(snapshot: LeaseStateSnapshot): string {
  const [before, after] = DESCRIPTIONS[snapshot.state];
  const state = `${before}${Math.round(snapshot.stateMs)}${after}`;
  return snapshot.lastSummary === undefined ? state : `${state}, last ${snapshot.lastSummary}`;
}
