// generic-pool with @opentelemetry/instrumentation-generic-pool, the contrib instrumentation created (and so hooked) first.
import { describeCoexistence } from './coexistence';
import { genericPoolCase } from './generic-pool-workload';

// generic-pool's Pool.prototype.acquire is patched by both.
describeCoexistence('contrib first', genericPoolCase);
