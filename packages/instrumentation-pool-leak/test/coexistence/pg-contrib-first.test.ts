// pg with @opentelemetry/instrumentation-pg, the contrib instrumentation created (and so hooked) first.
import { describeCoexistence } from './coexistence';
import { pgCase } from './pg-workload';

// pg-pool's Pool.prototype.connect and pg's Client.prototype.query are patched by both.
describeCoexistence('contrib first', pgCase);
