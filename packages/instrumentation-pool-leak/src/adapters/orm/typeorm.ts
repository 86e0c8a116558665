import type { AdapterContext } from '../kit/adapter';
import { carryingEntryPoints, type CallSiteHook } from '../kit/call-site-hooks';
import { kitFor, type MethodHook } from '../kit/kit';

const SUPPORTED_VERSIONS = ['>=0.3.0 <2'];
/**
 * Query runners of the drivers that run on a pool this package instruments (pg, mysql2,
 * mariadb) or that share their shape; each defines its own `startTransaction`.
 */
const QUERY_RUNNERS = [
  'postgres/PostgresQueryRunner',
  'aurora-postgres/AuroraPostgresQueryRunner',
  'cockroachdb/CockroachQueryRunner',
  'mysql/MysqlQueryRunner',
  'aurora-mysql/AuroraMysqlQueryRunner',
  'sqlserver/SqlServerQueryRunner',
  'oracle/OracleQueryRunner',
  'sap/SapQueryRunner',
];

/** A class whose prototype holds the methods hooked. */
interface TypeOrmClass {
  readonly prototype: object;
}

/**
 * TypeORM 0.3 and 1.x: `dataSource.transaction(cb)` and `manager.transaction(cb)` open their
 * query runner's transaction after awaits (`startTransaction` broadcasts to subscribers first),
 * so the pool's checkout comes when the application function has left the stack, and with a
 * service function that returns the promise, the async stack names only whoever awaits it. The
 * transaction methods, `query()` and the query runners' `startTransaction` carry their caller's
 * call site to that checkout. `repository.find()` and the query runners' `query()` reach the
 * pool synchronously: the live stack already names the application there.
 */
export const typeormHook: CallSiteHook = {
  name: 'typeorm',
  serves: ['pg-pool', 'mysql2', 'mariadb'],
  moduleDefinitions(context: AdapterContext) {
    const { core, module, file } = kitFor(context);
    const exported = (name: string) => (exports: Record<string, unknown>) => exports[name] as TypeOrmClass | undefined;
    const hooked = (path: string, className: string, methods: (prototype: object, hook: MethodHook) => void) =>
      file(`typeorm/${path}.js`, SUPPORTED_VERSIONS, (exports: Record<string, unknown>, hook) => {
        const prototype = exported(className)(exports)?.prototype;
        if (prototype !== undefined) methods(prototype, hook);
      });
    return [
      module('typeorm', SUPPORTED_VERSIONS, undefined, [
        // The body is the last argument (after an isolation level); entity classes stay themselves.
        hooked('data-source/DataSource', 'DataSource', (prototype, hook) => {
          carryingEntryPoints(hook, prototype, ['transaction'], core, 'last');
          carryingEntryPoints(hook, prototype, ['query'], core, 'none');
        }),
        hooked('entity-manager/EntityManager', 'EntityManager', (prototype, hook) => {
          carryingEntryPoints(hook, prototype, ['transaction'], core, 'last');
          carryingEntryPoints(hook, prototype, ['query'], core, 'none');
        }),
        ...QUERY_RUNNERS.map((path) =>
          hooked(`driver/${path}`, path.slice(path.indexOf('/') + 1), (prototype, hook) =>
            carryingEntryPoints(hook, prototype, ['startTransaction'], core, 'none'),
          ),
        ),
      ]),
    ];
  },
};
