// Attribute and event names of the product contract (DESIGN.md, "Public names").
//
// Stable semantic-convention names come from @opentelemetry/semantic-conventions. Names that are
// still "development" upstream are copied here, as the contrib packages do, so that an upstream
// rename cannot silently change what users' dashboards query.

/** Incubating semconv: `db.client.connection.pool.name`. */
export const ATTR_DB_CLIENT_CONNECTION_POOL_NAME = 'db.client.connection.pool.name';
/** Incubating semconv: `db.client.connection.max`. */
export const ATTR_DB_CLIENT_CONNECTION_MAX = 'db.client.connection.max';

export const ATTR_POOL_LIBRARY = 'pool.library';
export const ATTR_POOL_WAIT_MS = 'pool.wait_ms';
export const ATTR_POOL_HELD_MS = 'pool.held_ms';
/**
 * Up to 3 application frames of the checkout, innermost first:
 * `"safeConnect (lib/store.js:69) ← set (lib/store.js:22) ← handlePost (server.js:40)"`.
 */
export const ATTR_POOL_CALL_PATH = 'pool.call_path';
export const ATTR_POOL_PENDING_AT_REQUEST = 'pool.pending_at_request';
/** Set on the checkout span when the checkin asked the pool to destroy the connection. */
export const ATTR_POOL_CHECKIN_DESTROYED = 'pool.checkin.destroyed';
export const ATTR_POOL_RELEASE_REASON = 'pool.release.reason';
export const ATTR_POOL_RELEASE_STACKTRACE = 'pool.release.stacktrace';

export const EVENT_POOL_ACQUIRED = 'pool.acquired';
export const EVENT_POOL_RELEASE_INVALID = 'pool.release.invalid';

/** Incubating semconv: `db.client.connection.state` (`idle` | `used`). */
export const ATTR_DB_CLIENT_CONNECTION_STATE = 'db.client.connection.state';

export const ATTR_POOL_CHECKIN_STACKTRACE = 'pool.checkin.stacktrace';
/** The loop's current async resource at a loop-tick checkin (`Timeout`, `Immediate`, ...). */
export const ATTR_POOL_CHECKIN_ASYNC_RESOURCE_TYPE = 'pool.checkin.async_resource_type';

export const EVENT_POOL_CHECKIN_FINALIZER = 'pool.checkin.finalizer';
export const EVENT_POOL_CHECKIN_LOOP_TICK = 'pool.checkin.loop_tick';
export const EVENT_POOL_LEAK_SUSPECTED = 'pool.leak.suspected';
export const EVENT_POOL_LEAK_RETURNED = 'pool.leak.returned';

export const EVENT_POOL_EXHAUSTED = 'pool.exhausted';
/** Current holders of an exhausted pool, longest-held first, at most {@link MAX_POOL_HOLDERS}. */
export const ATTR_POOL_HOLDERS = 'pool.holders';
export const ATTR_POOL_HOLDERS_COUNT = 'pool.holders.count';
/** Requests still queued for a connection when a checkout failed. */
export const ATTR_POOL_PENDING = 'pool.pending';
/**
 * Why the pool ran dry, one verdict per starved checkout: `leaked_connections` | `slow_queries` |
 * `undersized_pool` | `mixed` (the rule: `exhaustion-cause.ts`, the package README).
 */
export const ATTR_POOL_EXHAUSTION_CAUSE = 'pool.exhaustion.cause';
/**
 * A checkout still waiting after the wait threshold: a `<library> wait.stalled` span at once,
 * and this event on the checkout span, timestamped at the stall.
 */
export const EVENT_POOL_WAIT_STALLED = 'pool.wait.stalled';

export const EVENT_POOL_USE_FOREIGN_CONTEXT = 'pool.use.foreign_context';
export const ATTR_POOL_USE_STACKTRACE = 'pool.use.stacktrace';
export const ATTR_POOL_USE_TRACE_ID = 'pool.use.trace_id';
export const ATTR_POOL_USE_SPAN_ID = 'pool.use.span_id';

/** What a held connection is doing when reported: `busy` | `idle` | `idle_in_transaction` | `idle_in_transaction_aborted`. */
export const ATTR_POOL_LEASE_STATE = 'pool.lease.state';
/** Milliseconds since the last statement on the held connection settled (since the grant if none); 0 while busy. */
export const ATTR_POOL_LEASE_IDLE_MS = 'pool.lease.idle_ms';
/** Statements issued on the held connection since the grant. */
export const ATTR_POOL_LEASE_STATEMENTS = 'pool.lease.statements';
/**
 * Semconv (development): `db.query.summary`, here of the last statement on the held connection:
 * operation and first table (`INSERT entries`), never a literal or parameter.
 */
export const ATTR_DB_QUERY_SUMMARY = 'db.query.summary';
