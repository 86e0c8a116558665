/**
 * A `db.query.summary` in the semantic-convention style: the operation and the first table it
 * names (`SELECT users`, `INSERT entries`), never a literal, parameter or value.
 *
 * The scan reads only bare words and quoted identifiers, and it stops at the first single quote
 * or dollar quote (`$$`, `$tag$`; `$1` placeholders are skipped): whether a backslash escapes a quote depends on the server's settings, so nothing after
 * a literal can be told apart from the literal's inside with certainty. A table named only after
 * a literal is left out rather than guessed. A double-quoted token is an identifier in
 * PostgreSQL and a string in MySQL; it is named only where a table must stand (where a MySQL
 * string would be a syntax error), and one holding a backslash ends the scan.
 */

/** Summaries longer than this are cut (semconv advises a low-cardinality, short value). */
const MAX_SUMMARY_LENGTH = 255;
/** Longest identifier kept: MySQL allows 64 characters, PostgreSQL 63. */
const MAX_IDENTIFIER_LENGTH = 64;
/** Tokens read before giving up on finding the table. */
const MAX_TOKENS = 64;

/** Operations a summary may start with; any other first word gives no summary. */
const OPERATIONS = new Set([
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'REPLACE',
  'MERGE',
  'UPSERT',
  'WITH',
  'CALL',
  'EXEC',
  'EXECUTE',
  'BEGIN',
  'START',
  'COMMIT',
  'ROLLBACK',
  'END',
  'ABORT',
  'SAVEPOINT',
  'RELEASE',
  'SET',
  'SHOW',
  'CREATE',
  'ALTER',
  'DROP',
  'TRUNCATE',
  'EXPLAIN',
  'VALUES',
  'COPY',
  'LOCK',
  'UNLOCK',
  'LISTEN',
  'NOTIFY',
  'UNLISTEN',
  'DO',
  'PREPARE',
  'DEALLOCATE',
  'DECLARE',
  'FETCH',
  'CLOSE',
  'VACUUM',
  'ANALYZE',
  'USE',
  'GRANT',
  'REVOKE',
]);

/** The word after which each operation names its table. */
const TABLE_AFTER: Readonly<Record<string, ReadonlySet<string>>> = {
  SELECT: new Set(['FROM']),
  DELETE: new Set(['FROM']),
  INSERT: new Set(['INTO']),
  REPLACE: new Set(['INTO']),
  MERGE: new Set(['INTO']),
  UPSERT: new Set(['INTO']),
  UPDATE: new Set(['UPDATE']),
  TRUNCATE: new Set(['TRUNCATE', 'TABLE']),
  LOCK: new Set(['TABLE', 'TABLES']),
  COPY: new Set(['COPY']),
  CREATE: new Set(['TABLE', 'VIEW', 'INDEX']),
  ALTER: new Set(['TABLE']),
  DROP: new Set(['TABLE', 'VIEW']),
};

/** Words that may stand between the keyword and the table (`UPDATE ONLY t`, `DROP TABLE IF EXISTS t`). */
const MODIFIERS = new Set(['ONLY', 'LOW_PRIORITY', 'IGNORE', 'IF', 'NOT', 'EXISTS', 'TABLE', 'LATERAL', 'DELAYED', 'QUICK', 'TEMPORARY', 'TEMP', 'UNLOGGED']);

/** Words the operation is named by together with the first one. */
const SECOND_WORDS: Readonly<Record<string, ReadonlySet<string>>> = {
  START: new Set(['TRANSACTION']),
  CREATE: new Set(['TABLE', 'VIEW', 'INDEX', 'SCHEMA', 'DATABASE', 'FUNCTION', 'PROCEDURE', 'TRIGGER', 'TYPE', 'EXTENSION']),
  ALTER: new Set(['TABLE', 'VIEW', 'INDEX', 'SCHEMA', 'DATABASE', 'FUNCTION', 'TYPE']),
  DROP: new Set(['TABLE', 'VIEW', 'INDEX', 'SCHEMA', 'DATABASE', 'FUNCTION', 'PROCEDURE', 'TRIGGER', 'TYPE', 'EXTENSION']),
};

type Token = { readonly kind: 'word' | 'identifier'; readonly text: string } | { readonly kind: 'other' };

/**
 * The summary of a statement's SQL text, or undefined when the text does not start with a known
 * operation (or there is no text).
 */
export function summarizeQuery(sql: string | undefined): string | undefined {
  if (sql === undefined) return undefined;
  const scanner = new SqlScanner(sql);
  const first = scanner.next();
  if (first === undefined || first.kind !== 'word') return undefined;
  const operationWord = first.text.toUpperCase();
  if (!OPERATIONS.has(operationWord)) return undefined;
  let operation = operationWord;
  const tableAfter = TABLE_AFTER[operationWord];
  let expectTable = tableAfter?.has(operationWord) === true;
  const second = SECOND_WORDS[operationWord];
  for (let read = 0; read < MAX_TOKENS; read++) {
    const token = scanner.next();
    if (token === undefined) break;
    if (token.kind === 'other') {
      expectTable = false;
      continue;
    }
    const upper = token.text.toUpperCase();
    if (read === 0 && token.kind === 'word' && second?.has(upper) === true) operation = `${operation} ${upper}`;
    if (tableAfter === undefined) break;
    if (expectTable) {
      if (token.kind === 'word' && MODIFIERS.has(upper)) continue;
      return cap(`${operation} ${token.text}`);
    }
    if (token.kind === 'word' && tableAfter.has(upper)) expectTable = true;
  }
  return cap(operation);
}

function cap(summary: string): string {
  return summary.length <= MAX_SUMMARY_LENGTH ? summary : summary.slice(0, MAX_SUMMARY_LENGTH);
}

/**
 * Reads names (words and quoted identifiers, dotted: `public.users`, `"app"."users"`) and single
 * other characters, skipping white space and comments. It ends at the first single quote or
 * dollar sign, where a literal or parameter may start, and at a double-quoted token holding a
 * backslash (a MySQL string whose end depends on the server's escaping).
 */
class SqlScanner {
  private index = 0;

  constructor(private readonly sql: string) {}

  next(): Token | undefined {
    this.skipSpaceAndComments();
    const sql = this.sql;
    if (this.index >= sql.length) return undefined;
    const char = sql[this.index] as string;
    if (char === '$' && isDigit(sql[this.index + 1] ?? '')) return this.positionalParameter();
    if (char === "'" || char === '$') return this.end();
    if (char === '"' || char === '`' || isWordStart(char)) return this.name();
    this.index++;
    return { kind: 'other' };
  }

  private name(): Token | undefined {
    const parts: string[] = [];
    let quoted = false;
    for (;;) {
      const char = this.sql[this.index];
      if (char === '"' || char === '`') {
        const part = this.quoted(char);
        if (part === undefined) return this.end();
        parts.push(part);
        quoted = true;
      } else {
        parts.push(this.word());
      }
      const after = this.sql[this.index + 1] ?? '';
      if (this.sql[this.index] !== '.' || !(after === '"' || after === '`' || isWordStart(after))) break;
      this.index++;
    }
    const text = parts.join('.');
    // A bare word starting with a digit is a number, which is a literal: never named.
    if ((!quoted && /^\d/.test(text)) || text.length > MAX_IDENTIFIER_LENGTH * 2 || parts.some((part) => part === '')) {
      return { kind: 'other' };
    }
    return { kind: quoted ? 'identifier' : 'word', text };
  }

  /** `$1`: a placeholder, whose value is never in the text. A dollar-quote tag cannot start with a digit. */
  private positionalParameter(): Token {
    this.index++;
    while (isDigit(this.sql[this.index] ?? '')) this.index++;
    return { kind: 'other' };
  }

  private word(): string {
    const sql = this.sql;
    const start = this.index;
    while (this.index < sql.length && isWordPart(sql[this.index] as string)) this.index++;
    return sql.slice(start, this.index);
  }

  /** A quoted name, its doubled quotes undone; undefined when it may not be a name. */
  private quoted(quote: string): string | undefined {
    const sql = this.sql;
    let text = '';
    let from = this.index + 1;
    for (;;) {
      const close = sql.indexOf(quote, from);
      if (close === -1) return undefined;
      text += sql.slice(from, close);
      if (sql[close + 1] !== quote) {
        this.index = close + 1;
        break;
      }
      text += quote;
      from = close + 2;
    }
    return text.length > MAX_IDENTIFIER_LENGTH || /[\\'\n\r]/.test(text) ? undefined : text;
  }

  private end(): undefined {
    this.index = this.sql.length;
    return undefined;
  }

  private skipSpaceAndComments(): void {
    const sql = this.sql;
    for (;;) {
      while (this.index < sql.length && /\s/.test(sql[this.index] as string)) this.index++;
      if (sql.startsWith('--', this.index) || sql[this.index] === '#') {
        const end = sql.indexOf('\n', this.index);
        this.index = end === -1 ? sql.length : end + 1;
      } else if (sql.startsWith('/*', this.index)) {
        const end = sql.indexOf('*/', this.index + 2);
        this.index = end === -1 ? sql.length : end + 2;
      } else {
        return;
      }
    }
  }
}

function isWordStart(char: string): boolean {
  return /[A-Za-z_0-9]/.test(char);
}

function isDigit(char: string): boolean {
  return char >= '0' && char <= '9';
}

function isWordPart(char: string): boolean {
  return /[A-Za-z0-9_$]/.test(char);
}
