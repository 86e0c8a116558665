// The per-lease statement bookkeeping on its own: transaction boundaries as the libraries and
// ORMs write them, in-flight counting with pipelined statements, and nothing kept after clear().
import { describe, expect, it } from 'vitest';
import { describeLeaseState, StatementActivity } from '../../src/core/lease-state';

function afterStatements(...statements: unknown[]): StatementActivity {
  const activity = new StatementActivity();
  let now = 10;
  for (const statement of statements) {
    activity.issued(statement, now++);
    activity.settled(now++);
  }
  return activity;
}

describe('StatementActivity', () => {
  it.each([
    [['BEGIN', 'INSERT INTO t VALUES (1)'], 'idle_in_transaction'],
    [['BEGIN;', 'SELECT 1', 'COMMIT;'], 'idle'],
    [['start transaction', { sql: 'UPDATE t SET a = 1' }], 'idle_in_transaction'],
    [['\n  START TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'SELECT 1', 'ROLLBACK'], 'idle'],
    [['BEGIN', 'SAVEPOINT s1', 'ROLLBACK TO SAVEPOINT s1'], 'idle_in_transaction'],
    [['BEGIN', 'ROLLBACK WORK TO s1'], 'idle_in_transaction'],
    [['BEGIN', 'COMMIT AND CHAIN'], 'idle_in_transaction'],
    [['BEGIN', { text: 'END' }], 'idle'],
    [['BEGIN', 'ABORT'], 'idle'],
    [['SELECT begin_date FROM events', 'SELECT 1'], 'idle'],
    [['COMMENT ON TABLE t IS $$x$$'], 'idle'],
  ] as const)('%j → %s', (statements, state) => {
    expect(afterStatements(...statements).snapshot(100, 0).state).toBe(state);
  });

  it('is busy while any statement is in flight, since the first of them was sent', () => {
    const activity = new StatementActivity();
    activity.issued('SELECT 1', 10);
    activity.issued('SELECT 2', 20);
    activity.settled(30);
    expect(activity.snapshot(50, 0)).toMatchObject({ state: 'busy', stateMs: 40, statements: 2 });
    activity.settled(60);
    activity.settled(70);
    expect(activity.snapshot(100, 0)).toMatchObject({ state: 'idle', stateMs: 40, statements: 2, lastSummary: 'SELECT' });
  });

  it('is idle since the grant before any statement', () => {
    expect(new StatementActivity().snapshot(250, 50)).toEqual({ state: 'idle', stateMs: 200, statements: 0, lastSummary: undefined });
  });

  it('library transaction APIs without SQL text mark the transaction', () => {
    const activity = afterStatements('SELECT 1');
    activity.transactionBegan();
    expect(activity.snapshot(100, 0).state).toBe('idle_in_transaction');
    activity.transactionEnded();
    expect(activity.snapshot(100, 0).state).toBe('idle');
  });

  it('drops the statement at clear(): no summary afterwards', () => {
    const activity = afterStatements({ text: 'INSERT INTO secrets (v) VALUES ($1)', values: ['hunter2'] });
    expect(activity.snapshot(100, 0).lastSummary).toBe('INSERT secrets');
    activity.clear();
    expect(activity.snapshot(100, 0).lastSummary).toBeUndefined();
  });

  describe('a statement counts once the server accepted it (#20)', () => {
    /** Runs `[statement, failed]` pairs, one at a time, on a lease of a `dbSystem` server. */
    function answered(dbSystem: string | undefined, ...steps: ReadonlyArray<readonly [string, boolean]>): StatementActivity {
      const activity = new StatementActivity(dbSystem);
      let now = 10;
      for (const [statement, failed] of steps) {
        activity.issued(statement, now++);
        activity.settled(now++, failed);
      }
      return activity;
    }
    const ok = (statement: string) => [statement, false] as const;
    const failed = (statement: string) => [statement, true] as const;

    it.each([
      ['postgresql', [failed('BEGIN ISOLATION LEVEL NONSENSE')], 'idle'],
      ['mysql', [failed('START TRANSACTION NONSENSE')], 'idle'],
      ['postgresql', [ok('BEGIN'), failed('SELECT 1 / 0')], 'idle_in_transaction_aborted'],
      ['postgresql', [ok('BEGIN'), failed('SELECT 1 / 0'), failed('SELECT 1')], 'idle_in_transaction_aborted'],
      ['postgresql', [ok('BEGIN'), failed('SELECT 1 / 0'), ok('ROLLBACK TO SAVEPOINT s1')], 'idle_in_transaction'],
      ['postgresql', [ok('BEGIN'), failed('SELECT 1 / 0'), ok('COMMIT')], 'idle'],
      ['postgresql', [ok('BEGIN'), failed('COMMIT')], 'idle'],
      ['postgresql', [failed('SELECT 1 / 0')], 'idle'],
      ['mariadb', [ok('BEGIN'), failed('SELECT * FROM missing')], 'idle_in_transaction'],
      ['mysql', [ok('BEGIN'), failed('COMMIT NONSENSE')], 'idle_in_transaction'],
      [undefined, [ok('BEGIN'), failed('SELECT 1')], 'idle_in_transaction'],
    ] as const)('%s: %j → %s', (dbSystem, steps, state) => {
      expect(answered(dbSystem, ...steps).snapshot(100, 0).state).toBe(state);
    });

    it('pipelined statements: the effect applies when its own answer comes, in order', () => {
      const activity = new StatementActivity('postgresql');
      activity.issued('BEGIN', 1);
      activity.issued('INSERT INTO t VALUES (1)', 2);
      activity.settled(3);
      activity.settled(4);
      expect(activity.snapshot(10, 0).state).toBe('idle_in_transaction');
      activity.issued('COMMIT', 5);
      activity.issued('SELECT 1', 6);
      activity.settled(7, true);
      activity.settled(8);
      expect(activity.snapshot(10, 0).state).toBe('idle');
    });

    it('a status given with the answer wins over the statement text', () => {
      const activity = new StatementActivity('mariadb');
      activity.issued('SET autocommit = 0', 1);
      activity.settled(2, false, 'idle');
      activity.issued('INSERT INTO t VALUES (1)', 3);
      activity.settled(4, false, 'in_transaction');
      expect(activity.snapshot(10, 0).state).toBe('idle_in_transaction');
      activity.issued('DROP TABLE IF EXISTS u', 5);
      activity.settled(6, false, 'idle');
      expect(activity.snapshot(10, 0).state).toBe('idle');
    });

    it('a status read from the driver at report time wins; without one, the statements tell', () => {
      const connection = { status: undefined as 'idle' | 'in_transaction' | 'aborted' | undefined };
      const activity = new StatementActivity('postgresql');
      activity.readStatusWith((held) => (held as typeof connection).status);
      activity.issued('BEGIN', 1);
      activity.settled(2);
      expect(activity.snapshot(10, 0, connection).state).toBe('idle_in_transaction');
      connection.status = 'aborted';
      expect(activity.snapshot(10, 0, connection).state).toBe('idle_in_transaction_aborted');
      connection.status = 'idle';
      expect(activity.snapshot(10, 0, connection).state).toBe('idle');
      // Busy is busy, whatever the last ReadyForQuery said.
      activity.issued('SELECT 1', 11);
      expect(activity.snapshot(12, 0, connection).state).toBe('busy');
    });
  });

  it('describes itself in the pool.holders form', () => {
    expect(describeLeaseState({ state: 'busy', stateMs: 12.4, statements: 1, lastSummary: 'SELECT' })).toBe('busy 12 ms, last SELECT');
    expect(describeLeaseState({ state: 'idle', stateMs: 2600, statements: 0, lastSummary: undefined })).toBe('idle 2600 ms');
    expect(describeLeaseState({ state: 'idle_in_transaction', stateMs: 2600, statements: 3, lastSummary: 'INSERT entries' })).toBe(
      'idle 2600 ms in transaction, last INSERT entries',
    );
    expect(describeLeaseState({ state: 'idle_in_transaction_aborted', stateMs: 40, statements: 2, lastSummary: 'SELECT' })).toBe(
      'idle 40 ms in transaction (aborted), last SELECT',
    );
  });
});
