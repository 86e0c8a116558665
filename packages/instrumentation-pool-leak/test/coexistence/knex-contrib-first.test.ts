// knex with @opentelemetry/instrumentation-knex, the contrib instrumentation created (and so hooked) first.
import { describeCoexistence } from './coexistence';
import { knexCase } from './knex-workload';

describeCoexistence('contrib first', knexCase);
