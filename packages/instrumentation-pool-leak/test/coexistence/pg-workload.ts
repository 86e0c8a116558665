// The pg workload of the coexistence suites: pool.connect in both forms, pool.query, a failing
// statement, on the real PostgreSQL.
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { describeError, outcomeOf } from '../support/in-memory-resources';
import { loadPg, postgresConfig } from '../support/pg';
import type { CoexistenceCase } from './coexistence';

export const pgCase: CoexistenceCase = {
  checkoutSpan: 'pg-pool checkout',
  contribScope: '@opentelemetry/instrumentation-pg',
  createContrib: () => new PgInstrumentation(),
  // connect(callback), connect() promise, pool.query, a failing pool.query.
  checkouts: 4,
  // At least one query span per statement.
  contribSpans: 4,
  load() {
    const pg = loadPg();
    const pool = new pg.Pool({ ...postgresConfig(), max: 2 });
    return {
      async run(inRequest) {
        const viaCallback = await inRequest('callback request', () =>
          new Promise<unknown>((resolve) => {
            pool.connect((error, client, done) => {
              if (error || client === undefined) return resolve({ error: describeError(error) });
              client.query('SELECT 1 AS one', (queryError: Error | null, result: { rows: { one: number }[] }) => {
                done();
                resolve(queryError ? { error: describeError(queryError) } : { value: result.rows[0]?.one });
              });
            });
          }),
        );
        const viaPromise = await inRequest('promise request', () =>
          outcomeOf(
            pool.connect().then(async (client) => {
              try {
                return (await client.query<{ two: number }>('SELECT 2 AS two')).rows[0]?.two;
              } finally {
                client.release();
              }
            }),
          ),
        );
        const viaPoolQuery = await inRequest('pool.query request', () =>
          outcomeOf(pool.query<{ three: number }>('SELECT 3 AS three').then((result) => result.rows[0]?.three)),
        );
        const failing = await inRequest('failing request', () => outcomeOf(pool.query('SELECT * FROM no_such_table_here')));
        return [viaCallback, viaPromise, viaPoolQuery, failing];
      },
      close: () => pool.end(),
    };
  },
};
