// knex on the real MariaDB through its mysql2 client (#20): knex calls that dialect `mysql`, but
// the server's greeting says MariaDB, and the checkout spans of the tarn pool say so too —
// learned from the first granted connection, as the mysql2 adapter learns it for its own pools.
import type { Knex } from 'knex';
import { afterAll, expect, it } from 'vitest';
import { requireLibrary } from '../support/in-memory-resources';
import { describeWithMariaDb } from '../support/mariadb';
import { mysql2Options } from '../support/mysql2';
import { setupTracing } from '../support/tracing';

const tracing = setupTracing();
const knex = requireLibrary<typeof import('knex').knex>('knex');

afterAll(() => tracing.instrumentation.disable());

describeWithMariaDb('knex (mysql2 client) on MariaDB', () => {
  let db: Knex | undefined;
  afterAll(() => db?.destroy());

  it('every tarn checkout span names db.system.name mariadb, the first one included', async () => {
    db = knex({ client: 'mysql2', connection: mysql2Options(), pool: { min: 0, max: 2 } });
    await db.raw('SELECT 1');
    await Promise.all([db.raw('SELECT 2'), db.raw('SELECT 3')]);
    const spans = tracing.spansNamed('tarn checkout');
    expect(spans.length).toBeGreaterThanOrEqual(3);
    expect(spans.map((span) => span.attributes['db.system.name'])).toEqual(spans.map(() => 'mariadb'));
    const { host, port, database } = mysql2Options();
    expect(spans[0]!.attributes).toMatchObject({ 'server.address': host, 'server.port': port, 'db.namespace': database });
  });
});
