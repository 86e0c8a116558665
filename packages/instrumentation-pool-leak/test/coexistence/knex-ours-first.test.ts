// knex with @opentelemetry/instrumentation-knex, ours created (and so hooked) first.
import { describeCoexistence } from './coexistence';
import { knexCase } from './knex-workload';

describeCoexistence('ours first', knexCase);
