// pg with @opentelemetry/instrumentation-pg, ours created (and so hooked) first.
import { describeCoexistence } from './coexistence';
import { pgCase } from './pg-workload';

// pg-pool's Pool.prototype.connect and pg's Client.prototype.query are patched by both.
describeCoexistence('ours first', pgCase);
