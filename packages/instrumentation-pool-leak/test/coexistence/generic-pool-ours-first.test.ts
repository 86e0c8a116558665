// generic-pool with @opentelemetry/instrumentation-generic-pool, ours created (and so hooked) first.
import { describeCoexistence } from './coexistence';
import { genericPoolCase } from './generic-pool-workload';

// generic-pool's Pool.prototype.acquire is patched by both.
describeCoexistence('ours first', genericPoolCase);
