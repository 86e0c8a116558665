// One pool's chart as inline SVG: a marker row (leak, stall, exhausted), one lane per connection
// with its leases as bars coloured by call path, the waiters below (request → grant, or → failure),
// and a time axis. Hover text is each element's <title>.
import { CALL_PATH_SEPARATOR, CallerNamer } from '../call-path';
import { esc, num } from './html';
import { assignLanes } from './lanes';
import { formatMs, type Lease, type Marker, type PoolTimeline } from './pool-timeline';

const WIDTH = 1160;
const GUTTER = 86;
const PLOT = WIDTH - GUTTER - 14;
const MARKER_ROW = 22;
const LANE = 18;
const LANE_GAP = 3;
const WAIT_ROW = 5;
/** Waiter rows drawn at most; further waiters share the last row. */
const MAX_WAIT_ROWS = 24;
const AXIS = 26;

export interface ChartContext {
  readonly startMs: number;
  readonly endMs: number;
  readonly colors: ReadonlyMap<string, string>;
  readonly namer: CallerNamer;
}

export function renderPoolSvg(pool: PoolTimeline, context: ChartContext): string {
  const span = Math.max(1, context.endMs - context.startMs);
  const x = (ms: number) => GUTTER + ((ms - context.startMs) / span) * PLOT;
  const lanesTop = MARKER_ROW + 4;
  const laneY = (lane: number) => lanesTop + lane * (LANE + LANE_GAP);
  const waitersTop = laneY(pool.laneCount) + 10;
  const waits = [...pool.leases.filter((lease) => (lease.waitMs ?? 0) >= 1), ...pool.failed];
  const { lanes: waitRows, count } = assignLanes(waits.map((lease) => ({ startMs: lease.requestedMs, endMs: lease.grantedMs ?? lease.endMs })));
  const rows = Math.min(count, MAX_WAIT_ROWS);
  const axisTop = waitersTop + Math.max(1, rows) * (WAIT_ROW + 1) + 8;
  const height = axisTop + AXIS;
  const parts: string[] = [];
  parts.push(`<text class="row-label" x="4" y="${MARKER_ROW - 7}">markers</text>`);
  for (let lane = 0; lane < pool.laneCount; lane++) {
    parts.push(
      `<g class="lane" data-lane="${lane}"><rect class="lane-bg" x="${GUTTER}" y="${laneY(lane)}" width="${PLOT}" height="${LANE}"/>` +
        `<text class="row-label" x="4" y="${laneY(lane) + 13}">conn ${lane + 1}</text></g>`,
    );
  }
  for (const lease of pool.leases) parts.push(leaseBar(lease, x, laneY(lease.lane), context));
  parts.push(`<text class="row-label" x="4" y="${waitersTop + 6}">waiting</text>`);
  waits.forEach((lease, index) => {
    const row = Math.min(waitRows[index] ?? 0, MAX_WAIT_ROWS - 1);
    parts.push(waitBar(lease, x, waitersTop + row * (WAIT_ROW + 1), context));
  });
  for (const marker of pool.markers) {
    const y = marker.lane === undefined ? MARKER_ROW / 2 + 2 : laneY(marker.lane) + LANE / 2;
    parts.push(markerShape(marker, x(marker.timeMs), y, context));
  }
  parts.push(axis(context, x, axisTop));
  return (
    `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ` +
    `role="img" aria-label="${esc(`connection lanes of ${pool.name}`)}">${parts.join('')}</svg>`
  );
}

function leaseBar(lease: Lease, x: (ms: number) => number, y: number, context: ChartContext): string {
  const start = x(lease.grantedMs ?? lease.requestedMs);
  const width = Math.max(1.5, x(lease.endMs) - start);
  const color = context.colors.get(lease.callPath) ?? '#999';
  const caller = context.namer.callerOf(lease.callPath.split(CALL_PATH_SEPARATOR)).functionName;
  const heldMs = lease.heldMs ?? lease.endMs - (lease.grantedMs ?? lease.endMs);
  const tip = [
    `${caller} — ${lease.outcome}`,
    `call path: ${lease.callPath}`,
    `held ${formatMs(heldMs)}${lease.outcome === 'open at shutdown' ? ' (until shutdown)' : ''}, waited ${formatMs(lease.waitMs ?? 0)}`,
    lease.leaseState === undefined ? 'lease state: not reported (it never passed the leak threshold)' : `lease state: ${lease.leaseState}`,
    lease.lastSummary === undefined ? undefined : `last statement: ${lease.lastSummary}`,
  ].filter((line): line is string => line !== undefined);
  return (
    `<rect class="lease" data-call-path="${esc(lease.callPath)}" data-outcome="${esc(lease.outcome)}" data-lane="${lease.lane}" ` +
    `x="${num(start)}" y="${y + 2}" width="${num(width)}" height="${LANE - 4}" fill="${color}"><title>${esc(tip.join('\n'))}</title></rect>`
  );
}

function waitBar(lease: Lease, x: (ms: number) => number, y: number, context: ChartContext): string {
  const end = lease.grantedMs ?? lease.endMs;
  const start = x(lease.requestedMs);
  const width = Math.max(1, x(end) - start);
  const granted = lease.grantedMs !== undefined;
  const caller = context.namer.callerOf(lease.callPath.split(CALL_PATH_SEPARATOR)).functionName;
  const tip = granted
    ? `${caller} waited ${formatMs(lease.waitMs ?? end - lease.requestedMs)} for a connection\ncall path: ${lease.callPath}`
    : `${caller} waited ${formatMs(end - lease.requestedMs)} and never got a connection: ${lease.statusMessage ?? 'failed'}\ncall path: ${lease.callPath}`;
  return (
    `<rect class="wait${granted ? '' : ' wait-failed'}" data-call-path="${esc(lease.callPath)}" data-outcome="${esc(lease.outcome)}" ` +
    `x="${num(start)}" y="${y}" width="${num(width)}" height="${WAIT_ROW}" fill="${context.colors.get(lease.callPath) ?? '#999'}"><title>${esc(tip)}</title></rect>`
  );
}

function markerShape(marker: Marker, cx: number, cy: number, context: ChartContext): string {
  const who = marker.callPath === undefined ? '' : context.namer.callerOf(marker.callPath.split(CALL_PATH_SEPARATOR)).functionName;
  const tip = esc([...marker.details.slice(0, 1), who === '' ? undefined : `call path: ${marker.callPath ?? ''}`, ...marker.details.slice(1)].filter((line) => line !== undefined).join('\n'));
  const open = `<g class="marker${marker.slowQuery ? ' slow-query' : ''}" data-kind="${marker.kind}"${marker.cause === undefined ? '' : ` data-cause="${esc(marker.cause)}"`}><title>${tip}</title>`;
  switch (marker.kind) {
    case 'leak':
      return `${open}<path d="M${num(cx)} ${num(cy + 7)} L${num(cx - 6)} ${num(cy - 5)} L${num(cx + 6)} ${num(cy - 5)} Z" class="${marker.slowQuery ? 'm-slow' : 'm-leak'}"/></g>`;
    case 'stall':
      return `${open}<path d="M${num(cx)} ${num(cy - 6)} L${num(cx + 5)} ${num(cy)} L${num(cx)} ${num(cy + 6)} L${num(cx - 5)} ${num(cy)} Z" class="m-stall"/></g>`;
    case 'exhausted':
      return `${open}<rect x="${num(cx - 1)}" y="${num(cy - 7)}" width="2.5" height="14" class="m-exhausted"/></g>`;
  }
}

function axis(context: ChartContext, x: (ms: number) => number, top: number): string {
  const seconds = (context.endMs - context.startMs) / 1000;
  const step = [0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((candidate) => seconds / candidate <= 14) ?? Math.ceil(seconds / 14);
  const ticks: string[] = [`<line class="axis" x1="${GUTTER}" x2="${GUTTER + PLOT}" y1="${top}" y2="${top}"/>`];
  for (let t = 0; t <= seconds + 1e-9; t += step) {
    const tx = num(x(context.startMs + t * 1000));
    ticks.push(`<line class="axis" x1="${tx}" x2="${tx}" y1="${top}" y2="${top + 4}"/><text class="tick" x="${tx}" y="${top + 16}">${esc(`${Math.round(t * 100) / 100} s`)}</text>`);
  }
  return `<g class="time-axis">${ticks.join('')}</g>`;
}
