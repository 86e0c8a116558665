// The console leak report as text. The first line names the caller that leaked the most
// connections (through which helpers): that is the line people paste into a ticket, so it must
// stand on its own. Rows show the whole call path, innermost first.
import { relative, sep } from 'node:path';
import type { Caller } from './call-path';
import type { CallSite } from './call-site';
import type { CallPathRow, ForeignUses, LeakReportData, LeakedCallSite, MisplacedCheckins } from './leak-report-data';
import type { PoolReport, PoolVerdict } from './pool-tally';

const FAILURE_REASONS_SHOWN = 5;
/** Rows of the checkouts-per-call-path table; the rest are summed up in one line. */
const CALL_PATHS_SHOWN = 12;

export type Show = (path: string) => string;

export function formatLeakReport(data: LeakReportData, cwd = process.cwd()): string {
  const lines: string[] = [];
  const show = (path: string) => shortPath(path, cwd);
  // The headline names a leak to fix; a call path that was only waiting on slow queries is not one.
  const top = data.leaks.find((row) => row.leaked > 0 && row.verdict !== 'slow query (busy)') ?? data.leaks[0];
  if (top === undefined) {
    lines.push(
      data.checkouts === 0
        ? 'No pool checkouts were seen (is OTEL_POOL_LEAK_ENABLED=false or OTEL_SDK_DISABLED=true set?).'
        : 'No leaked connections: every checkout was checked in.',
    );
  } else {
    const slow = top.leaked === 0 || top.verdict === 'slow query (busy)';
    const [headline, held, count] = slow ? ['SLOW QUERY', 'held', top.leaked + top.slowQueries] : ['LEAK', 'leaked', top.leaked];
    lines.push(`${headline}: ${top.caller.functionName} ${held} ${plural(count, 'pooled connection')} (${callerPlace(top, top.caller, show)})`);
    lines.push(
      '',
      'Call paths held past the leak threshold (each lease counted once: pg-pool leak spans and leases still open at shutdown;',
      'verdict from pool.lease.state: idle = the code kept the connection, busy = it waited on a statement):',
    );
    data.leaks.forEach((row, index) => lines.push(...leakRow(row, index + 1, show)));
    if (data.otherLeaks > 0) lines.push(`  ... and ${plural(data.otherLeaks, 'lease')} from further call sites`);
  }
  if (data.pools.length > 0) {
    lines.push('', 'Pools (verdict from who held the connections when checkouts timed out):');
    for (const pool of data.pools) lines.push(...poolRow(pool, foreignUsesOn(data.foreignUses, pool.name), show));
  }
  if (data.foreignUses.length > 0) {
    lines.push('', 'Connections used by another request (pool.use.foreign_context: a statement ran on a connection another trace holds):');
    for (const row of data.foreignUses) lines.push(...foreignUseRow(row, show));
    if (data.otherForeignUses > 0) lines.push(`  ... and ${data.otherForeignUses} more from further call sites`);
  }
  if (data.checkins.length > 0) {
    lines.push('', 'Checkins in the wrong place (event on the checkout span, with the checkin stack):');
    for (const row of data.checkins) lines.push(...checkinRow(row, show));
    if (data.otherCheckins > 0) lines.push(`  ... and ${data.otherCheckins} more from further call sites`);
  }
  if (data.callPaths.length > 0) {
    lines.push('', 'Checkouts by call path (pool.call_path, innermost first: each caller of a helper is a row of its own):');
    for (const row of data.callPaths.slice(0, CALL_PATHS_SHOWN)) lines.push(...callPathRow(row, show));
    const more = data.callPaths.slice(CALL_PATHS_SHOWN).reduce((sum, row) => sum + row.checkouts, data.otherCallPathCheckouts);
    if (more > 0) lines.push(`  ... and ${plural(more, 'checkout')} from further call paths`);
  }
  lines.push('', checkoutSummary(data));
  let shown = 0;
  for (const [reason, count] of data.failedCheckouts) {
    if (shown++ === FAILURE_REASONS_SHOWN) break;
    lines.push(`  ${count}× ${reason}`);
  }
  return lines.join('\n');
}

function leakRow(row: LeakedCallSite, rank: number, show: Show): string[] {
  const details = [`${row.reportedByThreshold} passed the leak threshold while running`, `${row.openAtShutdown} still open at shutdown`];
  if (row.returnedLater > 0) details.push(`${row.returnedLater} came back later`);
  const last = row.lastSummary === undefined ? '' : `, last ${row.lastSummary}`;
  return [
    `  ${rank}. ${row.caller.functionName} — ${row.verdict}${last} — ${leaseCounts(row)}: ${details.join(', ')}`,
    row.callPath === undefined ? `     taken at ${siteText(row, show)}` : `     call path ${showCallPath(row.callPath, show)}`,
    ...row.stack.map((frame) => `       ${showPaths(frame, show)}`),
  ];
}

/** `3 leases`, or `2 leases, 1 leaked, 1 slow query` when some were slow queries: those never count as leaked. */
function leaseCounts(row: LeakedCallSite): string {
  const leases = plural(row.leaked + row.slowQueries, 'lease');
  return row.slowQueries === 0 ? leases : `${leases}, ${row.leaked} leaked, ${plural(row.slowQueries, 'slow query', 'slow queries')}`;
}

function checkinRow(row: MisplacedCheckins, show: Show): string[] {
  return [`  ${row.event} ${row.count}×: taken by ${takenText(row.takenAt, show)}`, `     checked in by ${showPaths(row.checkedInBy, show)}`];
}

/** `BillingService.exportInvoice: 20 checkouts — 10 checked in, 10 leaked, longest hold 5012 ms`, then the path. */
function callPathRow(row: CallPathRow, show: Show): string[] {
  const facts = [`${row.checkedIn} checked in`];
  if (row.failed > 0) facts.push(`${row.failed} never got a connection`);
  facts.push(`${row.leaked} leaked`);
  if (row.longestHoldMs !== undefined) facts.push(`longest hold ${millis(row.longestHoldMs)}`);
  return [`  ${row.caller.functionName}: ${plural(row.checkouts, 'checkout')} — ${facts.join(', ')}`, `     ${takenText(row.site, show)}`];
}

function poolRow(pool: PoolReport, foreignUses: number, show: Show): string[] {
  const facts = [`peak pending ${pool.peakPending}`];
  facts.push(
    pool.waitP50Ms === undefined || pool.waitP99Ms === undefined ? 'no wait measured' : `wait p50 ${millis(pool.waitP50Ms)} / p99 ${millis(pool.waitP99Ms)}`,
  );
  facts.push(`${plural(pool.timeouts, 'timeout')} in ${plural(pool.checkouts, 'checkout')}`);
  if (pool.max !== undefined) facts.push(`max ${pool.max}`);
  if (foreignUses > 0) facts.push(`${foreignUses} used from another request (below)`);
  return [`  ${pool.name}: ${verdictText(pool.verdict, pool, show)}`, `     ${facts.join(', ')}`];
}

function foreignUsesOn(rows: readonly ForeignUses[], pool: string): number {
  return rows.reduce((sum, row) => (row.pool === pool ? sum + row.count : sum), 0);
}

/** The one line that says why the pool ran dry: leaks (who) or too small (by how much). */
export function verdictText(verdict: PoolVerdict, pool: Pick<PoolReport, 'queued'>, show: Show = (path) => path): string {
  switch (verdict.kind) {
    case 'ok':
      return pool.queued === 0 ? 'OK — no checkout timed out or queued' : `OK — no checkout timed out (${pool.queued} queued)`;
    case 'leaks': {
      const share = Math.round((100 * verdict.slots) / Math.max(1, verdict.holderSlots));
      return (
        `EXHAUSTED BY LEAKS — ${verdict.caller.functionName} leaks connections on call path ${takenText(verdict.site, show)}: ` +
        `its leases were ${verdict.slots} of the ${verdict.holderSlots} holders seen at timeouts (${share} %)`
      );
    }
    case 'undersized': {
      const size = verdict.max === undefined ? 'the pool' : plural(verdict.max, 'connection');
      const ratio = verdict.max === undefined || verdict.max === 0 ? '' : ` = ${ratioText(verdict.demand / verdict.max)}`;
      return `UNDERSIZED — peak concurrent demand ${verdict.demand} (held + waiting) for ${size}${ratio}; holders came back, none leaked`;
    }
    case 'slow queries':
      return 'EXHAUSTED BY SLOW QUERIES — most holders ran one statement through the whole wait';
    case 'mixed':
      return 'EXHAUSTED: MIXED CAUSES — no one cause (leaks, slow queries, too few connections) held most connections';
  }
}

function foreignUseRow(row: ForeignUses, show: Show): string[] {
  return [
    `  ${row.count}× on ${row.pool}: taken by ${takenText(row.takenAt, show)}`,
    `     used by ${showPaths(row.usedBy, show)} in another request`,
  ];
}

export function ratioText(ratio: number): string {
  return `${ratio >= 10 ? Math.round(ratio) : ratio.toFixed(1)}×`;
}

/** Whole milliseconds from 10 up, one decimal below (a pool that never waits shows 0.1 ms, not 0). */
function millis(ms: number): string {
  return `${ms >= 10 ? Math.round(ms) : Math.round(ms * 10) / 10} ms`;
}

function checkoutSummary(data: LeakReportData): string {
  const failed = [...data.failedCheckouts.values()].reduce((sum, count) => sum + count, 0);
  const open = data.leaks.reduce((sum, row) => sum + row.openAtShutdown, 0);
  return (
    `Checkouts: ${data.checkouts} spans — ${data.checkedIn} checked in, ${open} still held at shutdown, ` +
    `${failed} never got a connection${failed > 0 ? ':' : '.'}`
  );
}

function siteText(site: CallSite, show: Show): string {
  if (site.filePath === undefined) return 'no application frame in the stack';
  return site.line === undefined ? show(site.filePath) : `${show(site.filePath)}:${site.line}`;
}

/** The call path, or `function (file:line)` for a span without one. */
function takenText(site: CallSite, show: Show): string {
  return site.callPath === undefined ? `${site.functionName} (${siteText(site, show)})` : showCallPath(site.callPath, show);
}

/**
 * Where the named caller is: `service.ts:94, through safeConnect (connect.ts:20)` — its own
 * line, then the helpers between it and the pool, innermost first.
 */
export function callerPlace(site: CallSite, caller: Caller, show: Show): string {
  if (site.callPath === undefined) return siteText(site, show);
  const place = caller.location === undefined ? 'no file' : showLocation(caller.location, show);
  const through = caller.through.map((frame) => showCallPath(frame, show));
  return through.length === 0 ? place : `${place}, through ${through.join(' ← ')}`;
}

/** Shortens the `(path:line)` of every frame of a call path. */
function showCallPath(callPath: string, show: Show): string {
  return callPath.replace(/\((.+?):(\d+)\)(?= ← |$)/g, (_match, path: string, line: string) => `(${show(path)}:${line})`);
}

function showLocation(location: string, show: Show): string {
  const at = location.lastIndexOf(':');
  return at < 0 ? show(location) : `${show(location.slice(0, at))}${location.slice(at)}`;
}

/** A path under the working directory, relative to it; others unchanged. */
export function shortPath(path: string, cwd: string): string {
  const shorter = relative(cwd, path);
  return shorter === '' || shorter.startsWith('..') || shorter.startsWith(sep) ? path : shorter;
}

/** Shortens the paths inside a stack frame such as `fn (/abs/file.ts:1:2)`. */
function showPaths(frame: string, show: Show): string {
  return frame.replace(/(\(|^|\s)(\/[^():]+)(?=:\d+:\d+)/g, (_match, before: string, path: string) => `${before}${show(path)}`);
}

export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}
