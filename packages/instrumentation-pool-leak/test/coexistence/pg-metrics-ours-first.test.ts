// pg pool metrics beside @opentelemetry/instrumentation-pg, pool-leak created (and so hooked) first.
import { describePgMetricsDedup } from './pg-metrics';

describePgMetricsDedup('ours first');
