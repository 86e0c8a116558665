// The billing service's one way to take a connection by hand, as many services have: a helper
// that smooths over a known failure. Every checkout through it has this helper as its first
// application frame — the code.* of the span — whichever caller forgets to give the connection
// back; `pool.call_path` adds the callers, and the report names the one that leaks.
// Loaded only after the SDK started, so that `pg` is patched when it is first required.
import type pg from 'pg';

/**
 * Errors of a connection the server closed while it sat idle in the pool (a restart, an idle
 * timeout on the server's side): the next connection is likely fine, so one more try is worth it.
 * A pool timeout is not among them: trying again would only double the wait.
 */
const SERVER_CLOSED = new Set(['ECONNRESET', 'EPIPE', '57P01', '57P02', '57P03']);

/** `pool.connect()`, tried once more when the server had closed the connection. The caller releases. */
export async function safeConnect(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (error) {
    if (!SERVER_CLOSED.has(String((error as { code?: unknown }).code))) throw error;
    return pool.connect();
  }
}
