// mysql2 with @opentelemetry/instrumentation-mysql2, ours created (and so hooked) first.
import { describeWithMariaDb } from '../support/mariadb';
import { describeCoexistence } from './coexistence';
import { mysql2Case } from './mysql2-workload';

describeWithMariaDb('mysql2 next to @opentelemetry/instrumentation-mysql2', () => {
  // mysql2's Connection query and execute are patched by both; ours first, theirs ends on top.
  describeCoexistence('ours first', mysql2Case);
});
