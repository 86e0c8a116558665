// What drivers keep of the server's own word about a connection, read for the core: its
// transaction status (pg's ReadyForQuery, MySQL/MariaDB status flags) and which server it is.
import { DB_SYSTEM_NAME_VALUE_MARIADB, DB_SYSTEM_NAME_VALUE_MYSQL } from '@opentelemetry/semantic-conventions';
import type { ServerTransactionStatus } from '../../core';

/** `SERVER_STATUS_IN_TRANS` of the MySQL/MariaDB protocol's status flags (OK and EOF packets). */
const SERVER_STATUS_IN_TRANS = 0x0001;

/**
 * The server's transaction status that pg keeps from the last ReadyForQuery
 * (`client.getTransactionStatus()`, where the installed pg has it): `I` idle, `T` in a transaction, `E` in a
 * failed transaction. Undefined on an older pg or before the first ReadyForQuery.
 */
export function pgTransactionStatus(client: unknown): ServerTransactionStatus | undefined {
  const pg = client as { getTransactionStatus?: unknown; readyForQuery?: unknown } | null | undefined;
  const read = pg?.getTransactionStatus;
  // pg answers a failed statement at its ErrorResponse, before the ReadyForQuery that follows:
  // until that arrives the status is the previous statement's, not yet the server's word.
  if (typeof read !== 'function' || pg?.readyForQuery === false) return undefined;
  const code: unknown = read.call(client);
  return code === 'I' ? 'idle' : code === 'T' ? 'in_transaction' : code === 'E' ? 'aborted' : undefined;
}

/** The transaction status in MySQL/MariaDB status flags; undefined when `flags` is no number. */
export function mysqlTransactionStatus(flags: unknown): ServerTransactionStatus | undefined {
  if (typeof flags !== 'number') return undefined;
  return (flags & SERVER_STATUS_IN_TRANS) !== 0 ? 'in_transaction' : 'idle';
}

/**
 * `mariadb` when a mysql2 connection's server greeting says so (`10.11.6-MariaDB-…`), `mysql`
 * for another greeting, undefined for anything that is not a mysql2 connection (a pg Client
 * lent by tarn): the pool keeps the system it was described with.
 */
export function mysql2ServerDbSystem(connection: object): string | undefined {
  const version = (connection as { _handshakePacket?: { serverVersion?: unknown } | null })._handshakePacket?.serverVersion;
  if (typeof version !== 'string') return undefined;
  return /mariadb/i.test(version) ? DB_SYSTEM_NAME_VALUE_MARIADB : DB_SYSTEM_NAME_VALUE_MYSQL;
}
