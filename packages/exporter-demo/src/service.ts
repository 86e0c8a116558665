// The demo's application code: a billing service that uses a pg pool the way real services do,
// with one bug and two patterns that work but check connections in from the wrong place. The
// bug hides behind a helper: exportInvoice and buildStatement both check out through
// safeConnect, so only the call path tells the leaking caller from the honest one.
// Loaded only after the SDK started, so that `pg` is patched when it is first required.
import type pg from 'pg';
import { safeConnect } from './connect';
import { createPool, withClient, type DatabaseOptions } from './pools';

export interface ServiceOptions extends DatabaseOptions {
  readonly poolSize: number;
  /** How long a checkout waits for a free connection before it fails. */
  readonly checkoutTimeoutMs: number;
  /** How long the statement query runs: kept under the leak threshold, it is slow but honest. */
  readonly statementMs: number;
  /** Period of the audit writer, a timer started with the service, outside any request. */
  readonly auditFlushMs: number;
}

/** The invoice exists but cannot be exported yet (HTTP 409). */
export class InvoiceNotReadyError extends Error {
  override readonly name = 'InvoiceNotReadyError';
}

const INVOICES = 100;

/** Creates the tables with a client of its own, so that set-up work shows no pool spans. */
export async function createSchema(options: ServiceOptions): Promise<void> {
  await withClient(options, (client) =>
    client.query(`
      CREATE TABLE IF NOT EXISTS invoices (id int PRIMARY KEY, status text NOT NULL, total numeric NOT NULL);
      CREATE TABLE IF NOT EXISTS audit_log (id bigserial PRIMARY KEY, entity text NOT NULL, at timestamptz DEFAULT now());
      TRUNCATE invoices, audit_log;
      -- One invoice in three is still a draft: exporting it takes the error path.
      INSERT INTO invoices SELECT n, CASE WHEN n % 3 = 0 THEN 'draft' ELSE 'final' END, n * 10.5
        FROM generate_series(1, ${INVOICES}) AS n;
    `),
  );
}

const invoiceId = (id: number) => ((id - 1) % INVOICES) + 1;

/**
 * A report cursor owns its connection until close(). Callers forget close(), so a safety net
 * releases the connection once the cursor is garbage collected: it "works", but the checkin runs
 * inside a GC finalizer, long after the request, whenever the GC gets to it.
 */
class ReportCursor {
  constructor(
    private readonly client: pg.PoolClient,
    private readonly safetyNet: FinalizationRegistry<pg.PoolClient>,
  ) {
    safetyNet.register(this, client, this);
  }

  async rows(id: number): Promise<{ status: string; count: number }[]> {
    const result = await this.client.query<{ status: string; count: number }>(
      'SELECT status, count(*)::int AS count FROM invoices WHERE id <= $1 GROUP BY status',
      [invoiceId(id)],
    );
    return result.rows;
  }

  close(): void {
    this.safetyNet.unregister(this);
    this.client.release();
  }
}

export class BillingService {
  readonly pool: pg.Pool;
  // Created with the service, after the instrumentation is enabled, like any registry of the app.
  private readonly abandonedCursors = new FinalizationRegistry<pg.PoolClient>(function releaseAbandonedCursor(client) {
    client.release();
  });
  // Audit entries are written in the background by a timer started with the service, outside
  // any request: handing it a checked-out client means the checkin runs on a loop tick that
  // belongs to no request.
  private readonly pendingAudits: { client: pg.PoolClient; entity: string }[] = [];
  private readonly auditTimer: NodeJS.Timeout;

  constructor(private readonly options: ServiceOptions) {
    this.pool = createPool(options, { max: options.poolSize, checkoutTimeoutMs: options.checkoutTimeoutMs });
    this.auditTimer = setInterval(() => void this.flushAuditQueue(), options.auditFlushMs);
  }

  /** Healthy: pool.query checks out, queries and checks in by itself. */
  async getOrder(id: number): Promise<{ id: number; total: string }> {
    const result = await this.pool.query<{ id: number; total: string }>('SELECT id, total::text FROM invoices WHERE id = $1', [
      invoiceId(id),
    ]);
    return result.rows[0] ?? { id, total: '0' };
  }

  /** THE BUG: the not-ready path throws before `client.release()`, and the connection is gone. */
  async exportInvoice(id: number): Promise<{ id: number; exported: true }> {
    const client = await safeConnect(this.pool);
    const { rows } = await client.query<{ status: string }>('SELECT status FROM invoices WHERE id = $1', [invoiceId(id)]);
    if (rows[0]?.status !== 'final') throw new InvoiceNotReadyError(`invoice ${id} is still a draft`);
    await client.query('SELECT pg_notify($1, $2)', ['invoice_exported', String(id)]);
    client.release();
    return { id, exported: true };
  }

  /** Works, but never calls cursor.close(): the safety net checks the connection in, eventually. */
  async renderReport(id: number): Promise<{ id: number; rows: number }> {
    const cursor = new ReportCursor(await this.pool.connect(), this.abandonedCursors);
    const rows = await cursor.rows(id);
    return { id, rows: rows.length };
  }

  /** Checks out, reads, and leaves the client to the audit writer. */
  async recordAudit(id: number): Promise<{ id: number; queued: true }> {
    const client = await this.pool.connect();
    await client.query('SELECT 1 FROM invoices WHERE id = $1', [invoiceId(id)]);
    this.pendingAudits.push({ client, entity: `invoice:${invoiceId(id)}` });
    return { id, queued: true };
  }

  /**
   * Slow but honest: a long query, always released, held for part of the leak threshold
   * (`statementMs`). Takes its
   * connection through the same helper as exportInvoice: the same code.* line, another call path.
   */
  async buildStatement(id: number): Promise<{ id: number; statement: true }> {
    const client = await safeConnect(this.pool);
    try {
      await client.query('SELECT pg_sleep($1)', [this.options.statementMs / 1000]);
      return { id, statement: true };
    } finally {
      client.release();
    }
  }

  /** Stops the audit writer after writing what it holds. */
  async stop(): Promise<void> {
    clearInterval(this.auditTimer);
    await this.flushAuditQueue();
  }

  private async flushAuditQueue(): Promise<void> {
    for (const { client, entity } of this.pendingAudits.splice(0)) {
      try {
        await client.query('INSERT INTO audit_log (entity) VALUES ($1)', [entity]);
      } catch {
        // The demo's server may already be stopping; an audit entry is not worth a crash.
      } finally {
        client.release();
      }
    }
  }
}
