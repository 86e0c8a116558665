// The Prometheus names of today's instruments, as @opentelemetry/exporter-prometheus writes them
// (observability/README.md documents the mapping; the tests hold both to what a real run shows).

/** Every metric name of a scrape of an app whose pools are instrumented (no unit suffixes). */
export const PROMETHEUS_NAMES = [
  'db_client_connection_count',
  'db_client_connection_max',
  'db_client_connection_pending_requests',
  'db_client_connection_timeouts_total',
  'db_client_connection_use_time_bucket',
  'db_client_connection_use_time_count',
  'db_client_connection_use_time_sum',
  'db_client_connection_wait_time_bucket',
  'db_client_connection_wait_time_count',
  'db_client_connection_wait_time_sum',
  'pool_leak_suspected_total',
  'pool_use_foreign_context_total',
  'target_info',
] as const;

/** The stalled-waiter counter: in the rules and the dashboard, counted once the package declares `pool.wait.stalled`. */
export const STALLED_NAME = 'pool_wait_stalled_total';
