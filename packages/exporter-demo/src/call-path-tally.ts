// Checkouts per call path: how often each path took a connection, gave it back, or never got
// one, and its longest hold. Next to the leak counts it shows a helper's honest callers beside
// the leaking one, so the reader sees which caller to fix and that the helper itself is fine.
import { SpanStatusCode } from '@opentelemetry/api';
import { ATTR_POOL_HELD_MS } from 'opentelemetry-instrumentation-pool-leak';
import { callSiteOf, siteKey, type CallSite } from './call-site';
import type { ReportSpan } from './report-span';

/** What the checkout spans of one call path said. */
export interface CallPathCheckouts {
  readonly site: CallSite;
  checkouts: number;
  /** Ended normally after holding a connection. */
  checkedIn: number;
  /** Ended in ERROR without ever holding a connection (timeout, pool closed). */
  failed: number;
  /** Longest `pool.held_ms` of its checkouts; undefined while none held a connection. */
  longestHoldMs: number | undefined;
}

/** Bounded: at most `maxRows` call paths, further checkouts only counted. */
export class CallPathTally {
  private readonly rows = new Map<string, CallPathCheckouts>();
  /** Checkouts of call paths past the cap. */
  other = 0;

  constructor(private readonly maxRows: number) {}

  record(span: ReportSpan): void {
    const site = callSiteOf(span);
    const key = siteKey(site);
    let row = this.rows.get(key);
    if (row === undefined) {
      if (this.rows.size >= this.maxRows) {
        this.other++;
        return;
      }
      row = { site, checkouts: 0, checkedIn: 0, failed: 0, longestHoldMs: undefined };
      this.rows.set(key, row);
    }
    row.checkouts++;
    const held = span.attributes[ATTR_POOL_HELD_MS];
    if (typeof held === 'number') {
      row.longestHoldMs = Math.max(row.longestHoldMs ?? 0, held);
      if (span.status.code !== SpanStatusCode.ERROR) row.checkedIn++;
    } else if (span.status.code === SpanStatusCode.ERROR) {
      row.failed++;
    }
  }

  /** Keys of the rows: the call paths (see siteKey). */
  keys(): IterableIterator<string> {
    return this.rows.keys();
  }

  /** Copies of the rows, by key. */
  entries(): [string, CallPathCheckouts][] {
    return [...this.rows].map(([key, row]) => [key, { ...row }]);
  }
}
