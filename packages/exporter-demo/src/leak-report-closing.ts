// The last lines of the demo's output: the call path to fix, where it is, and each pool's verdict
// in a few words, so the culprit is on the screen when the run ends (the full report scrolls).
import type { LeakReportData } from './leak-report-data';
import { callerPlace, plural, ratioText, shortPath } from './leak-report-format';
import type { PoolReport } from './pool-tally';

export function formatClosing(data: LeakReportData, cwd = process.cwd()): string {
  const show = (path: string) => shortPath(path, cwd);
  const lines = ['Culprit'];
  const top = data.leaks.find((row) => row.leaked > 0 && row.verdict !== 'slow query (busy)');
  if (top === undefined) {
    lines.push('  no leaking call path: every connection that passed the leak threshold was busy in a statement and came back');
  } else {
    lines.push(`  ${top.caller.functionName} at ${callerPlace(top, top.caller, show)}`);
    lines.push(
      `    ${top.verdict}: ${plural(top.leaked, 'pooled connection')} taken and not given back` +
        (top.openAtShutdown > 0 ? ` (${top.openAtShutdown} still held at shutdown)` : ''),
    );
  }
  for (const pool of data.pools) lines.push(`  ${pool.name}: ${shortVerdict(pool)}`);
  return lines.join('\n');
}

/** A pool's verdict in a few words; the report above has the whole line. */
function shortVerdict(pool: PoolReport): string {
  const { verdict } = pool;
  switch (verdict.kind) {
    case 'ok':
      return 'OK — no checkout timed out';
    case 'leaks': {
      const share = Math.round((100 * verdict.slots) / Math.max(1, verdict.holderSlots));
      return `EXHAUSTED BY LEAKS of ${verdict.caller.functionName} — ${plural(pool.timeouts, 'checkout')} timed out, ${share} % of their holders were its leases`;
    }
    case 'undersized': {
      const ratio = verdict.max === undefined || verdict.max === 0 ? '' : ` (${ratioText(verdict.demand / verdict.max)})`;
      return `UNDERSIZED — ${plural(pool.timeouts, 'checkout')} timed out; peak demand ${verdict.demand} for ${verdict.max ?? '?'} connections${ratio}, nothing leaked`;
    }
    case 'slow queries':
      return `EXHAUSTED BY SLOW QUERIES — ${plural(pool.timeouts, 'checkout')} timed out behind statements that ran through the wait`;
    case 'mixed':
      return `EXHAUSTED: MIXED CAUSES — ${plural(pool.timeouts, 'checkout')} timed out`;
  }
}
