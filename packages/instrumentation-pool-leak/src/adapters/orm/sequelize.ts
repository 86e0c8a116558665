import type { AdapterContext } from '../kit/adapter';
import { carryingEntryPoints, type CallSiteHook } from '../kit/call-site-hooks';
import { kitFor, type MethodHook } from '../kit/kit';

const SEQUELIZE_6 = ['>=6.0.0 <7'];
const SEQUELIZE_7 = ['>=7.0.0-alpha.0 <8'];

/** Model statics that query (or open a transaction) in Sequelize 6 and 7. */
const MODEL_STATICS = [
  'findAll',
  'findOne',
  'findByPk',
  'findAndCountAll',
  'findOrCreate',
  'findCreateFind',
  'count',
  'aggregate',
  'max',
  'min',
  'sum',
  'create',
  'bulkCreate',
  'upsert',
  'update',
  'destroy',
  'restore',
  'increment',
  'decrement',
  'truncate',
  'describe',
  'sync',
  'drop',
] as const;
/** Model instance methods that query. */
const INSTANCE_METHODS = ['save', 'reload', 'update', 'destroy', 'restore', 'increment', 'decrement'] as const;

/** A model class as Sequelize's model files export it: statics and prototype are all we read. */
interface ModelClass {
  readonly prototype: object;
}

/**
 * Sequelize 6 (`sequelize`) and 7 (`@sequelize/core`): `return User.findAll()` starts an async
 * function that reaches `sequelize.query()` — and the pool — only after awaits of its own
 * (hooks, `findAll` → `query`), when the service function that called it has left the stack;
 * the async stack then names whoever awaits the promise. The model's query methods carry their
 * caller's call site (captured once, in the application's frame) to the checkout they cause.
 * `sequelize.query()` and `sequelize.transaction()` are carried by the `sequelize-pool` adapter;
 * inside a carried model call they capture nothing more.
 */
export const sequelizeHook: CallSiteHook = {
  name: 'sequelize',
  serves: ['sequelize-pool'],
  moduleDefinitions(context: AdapterContext) {
    const { core, module, file } = kitFor(context);
    /** Model functions take options objects; a function among them is a logger, not a body. */
    const hookModel = (Model: ModelClass, hook: MethodHook) => {
      carryingEntryPoints(hook, Model, MODEL_STATICS, core, 'none');
      carryingEntryPoints(hook, Model.prototype, INSTANCE_METHODS, core, 'none');
    };
    return [
      module('sequelize', SEQUELIZE_6, undefined, [file('sequelize/lib/model.js', SEQUELIZE_6, (Model: ModelClass, hook) => hookModel(Model, hook))]),
      module('@sequelize/core', SEQUELIZE_7, undefined, [
        file('@sequelize/core/lib/model.js', SEQUELIZE_7, (exports: { Model: ModelClass }, hook) => hookModel(exports.Model, hook)),
      ]),
    ];
  },
};
