// A small order service that uses a pg pool the way real code does, including one bug.
import { trace } from '@opentelemetry/api';
import pg from 'pg';

const tracer = trace.getTracer('pool-leak-demo');

export interface ServiceOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly poolSize: number;
}

export function createService(options: ServiceOptions) {
  const pool = new pg.Pool({ ...options, max: options.poolSize, connectionTimeoutMillis: 300 });
  // A leaked client has no error listener of its own; without one, the server going away at the
  // end of the demo would crash the process with an unhandled 'error' event.
  const guarded = new WeakSet<pg.PoolClient>();
  pool.on('acquire', (client) => {
    if (guarded.has(client)) return;
    guarded.add(client);
    client.on('error', () => {});
  });

  /** Healthy: checks out, queries, always releases. */
  async function placeOrder(orderId: number): Promise<number> {
    const client = await pool.connect();
    try {
      const result = await client.query<{ id: number }>('SELECT $1::int AS id', [orderId]);
      return result.rows[0]?.id ?? -1;
    } finally {
      client.release();
    }
  }

  /** The bug: the error path returns without releasing the client. */
  async function exportInvoice(orderId: number): Promise<string> {
    const client = await pool.connect();
    const result = await client.query<{ ok: boolean }>('SELECT $1::int % 4 <> 1 AS ok', [orderId]);
    if (result.rows[0]?.ok !== true) return 'skipped'; // client never released
    client.release();
    return 'exported';
  }

  /** Runs `work` inside a server span, as an HTTP framework's instrumentation would. */
  function handle<T>(route: string, work: () => Promise<T>): Promise<T> {
    return tracer.startActiveSpan(`GET ${route}`, async (span) => {
      try {
        return await work();
      } finally {
        span.end();
      }
    });
  }

  return { pool, placeOrder, exportInvoice, handle };
}
