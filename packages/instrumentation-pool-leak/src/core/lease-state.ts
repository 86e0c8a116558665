import type { Attributes } from '@opentelemetry/api';
import { summarizeQuery } from '../signals/query-summary';
import { ATTR_DB_QUERY_SUMMARY, ATTR_POOL_LEASE_IDLE_MS, ATTR_POOL_LEASE_STATE, ATTR_POOL_LEASE_STATEMENTS } from '../signals/semconv';

/** Values of `pool.lease.state`. */
export type LeaseStateName = 'busy' | 'idle' | 'idle_in_transaction';

/** What a lease was doing at one moment, built only when it is reported. */
export interface LeaseStateSnapshot {
  readonly state: LeaseStateName;
  /** Milliseconds busy (a statement in flight) or idle (none), up to the moment asked. */
  readonly stateMs: number;
  readonly statements: number;
  /** `db.query.summary` of the last statement, when one was seen and it could be summarised. */
  readonly lastSummary: string | undefined;
}

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
// ROLLBACK TO SAVEPOINT keeps the transaction open; COMMIT AND CHAIN opens the next one at once.
const CLOSES_TRANSACTION = /^(?:COMMIT|END|ROLLBACK|ABORT)\b(?!\s+(?:WORK\s+)?TO\b)(?!.*\bAND\s+CHAIN\b)/is;

/**
 * The statements of one lease, kept in O(1) per statement without allocating: how many, whether
 * one is in flight and since when, when the last one ended, whether a transaction is open, and a
 * reference to the last statement as the library was given it. The summary of that statement is
 * computed only when the lease is reported; {@link StatementActivity.clear} drops the reference.
 */
export class StatementActivity {
  statements = 0;
  private inFlight = 0;
  /** `performance.now()` when the connection last went from no statement in flight to one. */
  private busySince = 0;
  /** `performance.now()` when the last statement settled; 0 before any did. */
  private lastSettledAt = 0;
  private inTransaction = false;
  private lastStatement: unknown;

  /** A statement was sent. `statement` is what the library was given (text, or an object with `text`/`sql`). */
  issued(statement: unknown, now: number): void {
    this.statements++;
    if (this.inFlight++ === 0) this.busySince = now;
    this.lastStatement = statement;
    const text = statementText(statement);
    if (text !== undefined && mayChangeTransaction(text)) this.noteTransactionStatement(text);
  }

  /** A statement finished, with a result or an error. Extra calls never go below zero in flight. */
  settled(now: number): void {
    if (this.inFlight === 0) return;
    this.inFlight--;
    this.lastSettledAt = now;
  }

  /** The library's own transaction API opened a transaction without SQL text through a hooked method. */
  transactionBegan(): void {
    this.inTransaction = true;
  }

  /** The library's own transaction API committed or rolled back. */
  transactionEnded(): void {
    this.inTransaction = false;
  }

  /** The state at `now` of a lease granted at `grantedAt`. */
  snapshot(now: number, grantedAt: number): LeaseStateSnapshot {
    const busy = this.inFlight > 0;
    const since = busy ? this.busySince : Math.max(this.lastSettledAt, grantedAt);
    return {
      state: busy ? 'busy' : this.inTransaction ? 'idle_in_transaction' : 'idle',
      stateMs: Math.max(0, now - since),
      statements: this.statements,
      lastSummary: this.statements === 0 ? undefined : summarizeQuery(statementText(this.lastStatement)),
    };
  }

  /** Drops the reference to the last statement (its text and parameters): the lease ended. */
  clear(): void {
    this.lastStatement = undefined;
  }

  private noteTransactionStatement(text: string): void {
    const trimmed = text.trimStart();
    if (OPENS_TRANSACTION.test(trimmed)) this.inTransaction = true;
    else if (CLOSES_TRANSACTION.test(trimmed)) this.inTransaction = false;
  }
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

/** `busy 12 ms` | `idle 2600 ms` | `idle 2600 ms in transaction`, then `, last INSERT entries` when known. */
export function describeLeaseState(snapshot: LeaseStateSnapshot): string {
  const ms = Math.round(snapshot.stateMs);
  const state =
    snapshot.state === 'busy' ? `busy ${ms} ms` : snapshot.state === 'idle' ? `idle ${ms} ms` : `idle ${ms} ms in transaction`;
  return snapshot.lastSummary === undefined ? state : `${state}, last ${snapshot.lastSummary}`;
}
