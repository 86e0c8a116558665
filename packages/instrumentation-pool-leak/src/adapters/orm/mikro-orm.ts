import type { AdapterContext } from '../kit/adapter';
import { carryingEntryPoints, type CallSiteHook } from '../kit/call-site-hooks';
import { kitFor } from '../kit/kit';

const SUPPORTED_VERSIONS = ['>=7.0.0 <8'];
/**
 * `EntityManager` methods that query or open a transaction. Their first argument is often an
 * entity class, which must stay itself: no argument is wrapped.
 */
const FINDERS_AND_WRITERS = [
  'find',
  'findAll',
  'findAndCount',
  'findByCursor',
  'findOne',
  'findOneOrFail',
  'refresh',
  'refreshOrFail',
  'count',
  'countBy',
  'upsert',
  'upsertMany',
  'insert',
  'insertMany',
  'nativeUpdate',
  'nativeDelete',
  'callRoutine',
  'lock',
  'populate',
  'lockAndPopulate',
  'flush',
  'begin',
];
/** Methods that take the application's callback: it runs on the caller's side. */
const TRANSACTIONS = ['transactional'];
/** `SqlEntityManager` (`@mikro-orm/sql`): raw queries. */
const SQL_METHODS = ['execute'];

/** The module exports read: the entity manager classes. */
interface MikroOrmExports {
  readonly EntityManager?: { readonly prototype: object };
  readonly SqlEntityManager?: { readonly prototype: object };
}

/**
 * MikroORM 7 (ES modules only): `em.find()`, `em.flush()` and `em.transactional()` reach the
 * pool (pg under Kysely) only after several awaits inside the ORM. A service function that
 * returns `em.find(...)` is then on no stack at all, and the async stack names whoever awaits
 * the promise. The entity manager's public methods carry their caller's call site, captured
 * once per call in the application's frame, to the checkout they cause.
 */
export const mikroOrmHook: CallSiteHook = {
  name: '@mikro-orm/core',
  serves: ['pg-pool', 'mysql2', 'mariadb'],
  moduleDefinitions(context: AdapterContext) {
    const { core, module } = kitFor(context);
    return [
      module('@mikro-orm/core', SUPPORTED_VERSIONS, (exports: MikroOrmExports, hook) => {
        const prototype = exports.EntityManager?.prototype;
        if (prototype === undefined) return;
        carryingEntryPoints(hook, prototype, FINDERS_AND_WRITERS, core, 'none');
        carryingEntryPoints(hook, prototype, TRANSACTIONS, core, 'all');
      }),
      module('@mikro-orm/sql', SUPPORTED_VERSIONS, (exports: MikroOrmExports, hook) => {
        const prototype = exports.SqlEntityManager?.prototype;
        if (prototype !== undefined) carryingEntryPoints(hook, prototype, SQL_METHODS, core, 'none');
      }),
    ];
  },
};
