// The knex workload of the coexistence suites (knex on pg, so its pool is tarn's): a raw query, a
// transaction, and a failing statement, on the real PostgreSQL.
import { KnexInstrumentation } from '@opentelemetry/instrumentation-knex';
import type { knex as KnexFactory } from 'knex';
import { outcomeOf, requireLibrary } from '../support/in-memory-resources';
import { postgresConfig } from '../support/pg';
import type { CoexistenceCase } from './coexistence';

const quietLog = { warn() {}, error() {}, deprecate() {}, debug() {} };

export const knexCase: CoexistenceCase = {
  checkoutSpan: 'tarn checkout',
  contribScope: '@opentelemetry/instrumentation-knex',
  createContrib: () => new KnexInstrumentation(),
  // raw, transaction, failing raw.
  checkouts: 3,
  contribSpans: 3,
  load() {
    const knex = requireLibrary<typeof KnexFactory>('knex');
    const db = knex({ client: 'pg', connection: postgresConfig(), pool: { min: 0, max: 2 }, log: quietLog });
    return {
      async run(inRequest) {
        const raw = await inRequest('raw request', () =>
          outcomeOf(db.raw<{ rows: { one: number }[] }>('select 1 as one').then((result) => result.rows[0]?.one)),
        );
        const transaction = await inRequest('transaction request', () =>
          outcomeOf(db.transaction((trx) => trx.raw<{ rows: { two: number }[] }>('select 2 as two').then((result) => result.rows[0]?.two))),
        );
        const failing = await inRequest('failing request', () => outcomeOf(db.raw('select * from no_such_table_here')));
        return [raw, transaction, failing];
      },
      close: () => db.destroy(),
    };
  },
};
