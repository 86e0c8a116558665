// pg pool metrics beside @opentelemetry/instrumentation-pg, created (and so hooked) first.
import { describePgMetricsDedup } from './pg-metrics';

describePgMetricsDedup('contrib first');
