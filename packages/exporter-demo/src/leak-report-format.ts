// The console leak report as text. The first line names the function that leaked the most
// connections: that is the line people paste into a ticket, so it must stand on its own.
import { relative, sep } from 'node:path';
import type { CallSite, LeakReportData, LeakedCallSite, MisplacedCheckins } from './leak-report-exporter';

const FAILURE_REASONS_SHOWN = 5;

export function formatLeakReport(data: LeakReportData, cwd = process.cwd()): string {
  const lines: string[] = [];
  const show = (path: string) => shortPath(path, cwd);
  const [top] = data.leaks;
  if (top === undefined) {
    lines.push(
      data.checkouts === 0
        ? 'No pool checkouts were seen (is OTEL_POOL_LEAK_ENABLED=false or OTEL_SDK_DISABLED=true set?).'
        : 'No leaked connections: every checkout was checked in.',
    );
  } else {
    lines.push(`LEAK: ${top.functionName} leaked ${plural(top.leaked, 'pooled connection')} (${siteText(top, show)})`);
    lines.push('', 'Leaking call sites (each lease counted once: pg-pool leak spans and leases still open at shutdown):');
    data.leaks.forEach((row, index) => lines.push(...leakRow(row, index + 1, show)));
    if (data.otherLeaks > 0) lines.push(`  ... and ${plural(data.otherLeaks, 'lease')} from further call sites`);
  }
  if (data.checkins.length > 0) {
    lines.push('', 'Checkins in the wrong place (event on the checkout span, with the checkin stack):');
    for (const row of data.checkins) lines.push(...checkinRow(row, show));
    if (data.otherCheckins > 0) lines.push(`  ... and ${data.otherCheckins} more from further call sites`);
  }
  lines.push('', checkoutSummary(data));
  let shown = 0;
  for (const [reason, count] of data.failedCheckouts) {
    if (shown++ === FAILURE_REASONS_SHOWN) break;
    lines.push(`  ${count}× ${reason}`);
  }
  return lines.join('\n');
}

function leakRow(row: LeakedCallSite, rank: number, show: (path: string) => string): string[] {
  const details = [`${row.reportedByThreshold} passed the leak threshold while running`, `${row.openAtShutdown} still open at shutdown`];
  if (row.returnedLater > 0) details.push(`${row.returnedLater} came back later`);
  return [
    `  ${rank}. ${row.functionName} — ${plural(row.leaked, 'lease')}: ${details.join(', ')}`,
    `     taken at ${siteText(row, show)}`,
    ...row.stack.map((frame) => `       ${showPaths(frame, show)}`),
  ];
}

function checkinRow(row: MisplacedCheckins, show: (path: string) => string): string[] {
  return [
    `  ${row.event} ${row.count}×: taken by ${row.takenAt.functionName} (${siteText(row.takenAt, show)})`,
    `     checked in by ${showPaths(row.checkedInBy, show)}`,
  ];
}

function checkoutSummary(data: LeakReportData): string {
  const failed = [...data.failedCheckouts.values()].reduce((sum, count) => sum + count, 0);
  const open = data.leaks.reduce((sum, row) => sum + row.openAtShutdown, 0);
  return (
    `Checkouts: ${data.checkouts} spans — ${data.checkedIn} checked in, ${open} still held at shutdown, ` +
    `${failed} never got a connection${failed > 0 ? ':' : '.'}`
  );
}

function siteText(site: CallSite, show: (path: string) => string): string {
  if (site.filePath === undefined) return 'no application frame in the stack';
  return site.line === undefined ? show(site.filePath) : `${show(site.filePath)}:${site.line}`;
}

/** A path under the working directory, relative to it; others unchanged. */
function shortPath(path: string, cwd: string): string {
  const shorter = relative(cwd, path);
  return shorter === '' || shorter.startsWith('..') || shorter.startsWith(sep) ? path : shorter;
}

/** Shortens the paths inside a stack frame such as `fn (/abs/file.ts:1:2)`. */
function showPaths(frame: string, show: (path: string) => string): string {
  return frame.replace(/(\(|^|\s)(\/[^():]+)(?=:\d+:\d+)/g, (_match, before: string, path: string) => `${before}${show(path)}`);
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
