// The mysql2 workload of the coexistence suites: getConnection with a callback query, the promise
// pool's query, and a failing statement, on the real MariaDB.
import { MySQL2Instrumentation } from '@opentelemetry/instrumentation-mysql2';
import { describeError, outcomeOf } from '../support/in-memory-resources';
import { loadMysql2, mysql2Options } from '../support/mysql2';
import type { CoexistenceCase } from './coexistence';

export const mysql2Case: CoexistenceCase = {
  checkoutSpan: 'mysql2 checkout',
  contribScope: '@opentelemetry/instrumentation-mysql2',
  createContrib: () => new MySQL2Instrumentation(),
  // getConnection, promise pool.query, failing pool.query.
  checkouts: 3,
  contribSpans: 3,
  load() {
    const mysql2 = loadMysql2();
    const pool = mysql2.createPool({ ...mysql2Options(), connectionLimit: 2 });
    return {
      async run(inRequest) {
        const viaCallback = await inRequest('callback request', () =>
          new Promise<unknown>((resolve) => {
            pool.getConnection((error, connection) => {
              if (error) return resolve({ error: describeError(error) });
              connection.query('SELECT 1 AS one', (queryError, rows) => {
                connection.release();
                resolve(queryError ? { error: describeError(queryError) } : { value: (rows as { one: number }[])[0]?.one });
              });
            });
          }),
        );
        const viaPromise = await inRequest('promise request', () =>
          outcomeOf(pool.promise().query('SELECT 2 AS two').then(([rows]) => (rows as { two: number }[])[0]?.two)),
        );
        const failing = await inRequest('failing request', () => outcomeOf(pool.promise().query('SELECT * FROM no_such_table_here')));
        return [viaCallback, viaPromise, failing];
      },
      close: () => pool.promise().end(),
    };
  },
};
