import type { AdapterContext } from '../kit/adapter';
import { derivingCallSite, rememberingCaller, runningWithCallSite, type CallSiteHook } from '../kit/call-site-hooks';
import { kitFor } from '../kit/kit';

const SUPPORTED_VERSIONS = ['>=2.0.0 <4'];

/** The parts of Objection's classes the hook wraps. */
interface ObjectionModelModule {
  readonly Model: { query: (this: unknown, ...args: unknown[]) => unknown };
}
interface ObjectionQueryBuilderModule {
  readonly QueryBuilder: { readonly prototype: Record<'execute' | 'clone', (this: unknown, ...args: unknown[]) => unknown> };
}

/**
 * Objection (on knex): `User.query()`, `user.$query()`, `user.$relatedQuery()` and
 * `User.relatedQuery()` all build through the static `Model.query()`, in the application's
 * frame; the query runs from the builder's `then()` → `execute()`, which builds knex's query
 * only after awaits of its own (`beforeExecute`). So `Model.query()` remembers its caller on the
 * builder (one capture per query, however many builder methods follow), `execute()` runs with
 * that call site — knex's builders and transactions made inside take it — and a clone the
 * application makes keeps it. `Model.transaction()` and `objection.transaction()` open a knex
 * transaction synchronously in the caller's call: knex's own hooks see the caller there.
 */
export const objectionHook: CallSiteHook = {
  name: 'objection',
  serves: ['tarn'],
  moduleDefinitions(context: AdapterContext) {
    const { core, module, file } = kitFor(context);
    return [
      module('objection', SUPPORTED_VERSIONS, undefined, [
        file('objection/lib/model/Model.js', SUPPORTED_VERSIONS, ({ Model }: ObjectionModelModule, hook) => {
          hook(Model, 'query', (original) => rememberingCaller(original, core));
        }),
        file('objection/lib/queryBuilder/QueryBuilder.js', SUPPORTED_VERSIONS, ({ QueryBuilder }: ObjectionQueryBuilderModule, hook) => {
          hook(QueryBuilder.prototype, 'execute', (original) => runningWithCallSite(original, core));
          hook(QueryBuilder.prototype, 'clone', (original) => derivingCallSite(original, core));
        }),
      ]),
    ];
  },
};
