// db.query.summary of the last statement: operation and first table, never a literal, parameter
// or value, whatever the SQL dialect's quoting rules are.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { summarizeQuery } from '../../src/signals/query-summary';

describe('summarizeQuery', () => {
  it.each([
    ['SELECT id, note FROM entries WHERE id = $1', 'SELECT entries'],
    ['select * from public.users u join orders o on o.user_id = u.id', 'SELECT public.users'],
    ['INSERT INTO entries (note) VALUES (?)', 'INSERT entries'],
    ['insert into "lease_entries" ("note", "amount") values ($1, $2) returning "id"', 'INSERT lease_entries'],
    ['select "id", "note" from "app"."users" where "id" = $1', 'SELECT app.users'],
    ['UPDATE `orders` SET total = 3 WHERE id = 7', 'UPDATE orders'],
    ['UPDATE ONLY accounts SET balance = 0', 'UPDATE accounts'],
    ['DELETE FROM sessions WHERE expires < now()', 'DELETE sessions'],
    ['  /* sqlcommenter: route=/x */\n  SELECT 1', 'SELECT'],
    ['-- leading comment\nSELECT count(*) FROM items', 'SELECT items'],
    ['BEGIN', 'BEGIN'],
    ['START TRANSACTION', 'START TRANSACTION'],
    ['COMMIT', 'COMMIT'],
    ['ROLLBACK TO SAVEPOINT sp1', 'ROLLBACK'],
    ['CREATE TABLE IF NOT EXISTS lease_entries (id serial)', 'CREATE TABLE lease_entries'],
    ['DROP TABLE IF EXISTS old_entries', 'DROP TABLE old_entries'],
    ['TRUNCATE TABLE audit_log', 'TRUNCATE audit_log'],
    ['SELECT * FROM (SELECT id FROM inner_table) AS sub', 'SELECT inner_table'],
    ['SELECT pg_sleep($1), count(*) FROM carts WHERE owner = $2', 'SELECT carts'],
  ])('%s → %s', (sql, summary) => {
    expect(summarizeQuery(sql)).toBe(summary);
  });

  it('gives no summary for text that does not start with a known operation, or no text', () => {
    expect(summarizeQuery(undefined)).toBeUndefined();
    expect(summarizeQuery('')).toBeUndefined();
    expect(summarizeQuery("'secret' SELECT")).toBeUndefined();
    expect(summarizeQuery('hunter2 FROM users')).toBeUndefined();
  });

  it('never names what follows a literal, whatever the escaping rules', () => {
    // PostgreSQL reads the first literal as `x\` and names `leaked` as a column; MySQL reads it
    // as one literal. Neither reading may put `leaked` in the summary.
    expect(summarizeQuery("SELECT 'x\\' , 'y' FROM leaked")).toBe('SELECT');
    expect(summarizeQuery('SELECT "a\\" FROM leaked "" FROM t')).toBe('SELECT');
    expect(summarizeQuery('SELECT $$ FROM leaked $$ FROM t')).toBe('SELECT');
    expect(summarizeQuery('SELECT $q$ FROM leaked $q$ FROM t')).toBe('SELECT');
    expect(summarizeQuery('SELECT f($1, $tag$ FROM leaked $tag$) FROM t')).toBe('SELECT');
    expect(summarizeQuery('SELECT 42 FROM t')).toBe('SELECT t');
    expect(summarizeQuery('INSERT INTO 12345 VALUES (1)')).toBe('INSERT');
  });

  it('is capped in length', () => {
    const long = `SELECT * FROM ${'a'.repeat(500)}`;
    expect(summarizeQuery(long)).toBe('SELECT');
  });

  /**
   * A literal of any shape a statement may carry: its body mixes SQL words, quotes and
   * backslashes, so that a scanner reading it with the wrong escaping rule would see `FROM
   * Zqleak` as code. `Zq` marks literal content: no table name of the templates contains it.
   */
  const piece = fc.oneof(
    fc.constantFrom('\\', "'", '"', '`', '$$', ' FROM Zqleak ', ' INTO Zqleak ', 'Zqleak', ',', '--', '/*', '*/', '\n'),
    fc.string({ maxLength: 4 }),
  );
  const literal = fc
    .tuple(fc.array(piece, { minLength: 1, maxLength: 8 }), fc.constantFrom("'", '"', '$$', '$q$', ''), fc.boolean())
    .map(([pieces, quote, numeric]) => ({ value: numeric ? `8${pieces.join('').replace(/\D/g, '')}7` : `Zq${pieces.join('')}`, quote }));
  const template = fc.constantFrom(
    (lit: string) => `SELECT * FROM users WHERE name = ${lit}`,
    (lit: string) => `SELECT ${lit} FROM users`,
    (lit: string) => `SELECT ${lit}, ${lit} AS b FROM users`,
    (lit: string) => `SELECT concat(${lit}, name) FROM users`,
    (lit: string) => `INSERT INTO entries (note) VALUES (${lit})`,
    (lit: string) => `UPDATE accounts SET note = ${lit} WHERE id = 1`,
    (lit: string) => `DELETE FROM sessions WHERE token = ${lit}`,
    (lit: string) => `SELECT id FROM ${lit}`,
    (lit: string) => `INSERT INTO ${lit} VALUES (1)`,
    (lit: string) => `${lit} SELECT 1`,
    (lit: string) => `SELECT id FROM t WHERE x = ${lit} /* ${'note'} */`,
  );

  /**
   * The literal as SQL text. `''`: quotes doubled, a literal in every dialect. `'`: written raw,
   * so backslashes and quotes inside mean what the server's escaping rule says. The others are
   * escaped so that both dialects end them at the closing quote.
   */
  function quoted(value: string, quote: string): string {
    if (quote === '') return `'${value.replace(/'/g, "''")}'`;
    if (quote === '"') return `"${value.replace(/"/g, '""')}"`;
    if (quote === "'") return `'${value}'`;
    return `${quote}${value.replace(/\$/g, 'S')}${quote}`;
  }

  it('never contains a literal (property)', () => {
    fc.assert(
      fc.property(literal, template, ({ value, quote }, build) => {
        const numeric = /^8\d*7$/.test(value);
        const written = numeric ? value : quoted(value, quote);
        const summary = summarizeQuery(build(written)) ?? '';
        // A quoted name in table position may legitimately be named (PostgreSQL identifiers);
        // a literal in any other place, or any string literal, must never appear.
        const tablePosition = build('@@').match(/(?:FROM|INTO) @@/) !== null;
        if (tablePosition && quote === '"') return;
        expect(summary).not.toContain(value.length > 0 ? value : '\u0000');
        if (numeric) expect(summary).not.toMatch(/\d/);
        expect(summary).not.toMatch(/Zq/);
      }),
      { numRuns: 3000 },
    );
  });
});
