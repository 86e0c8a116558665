// One colour per call path, the same in every pool's chart and legend: the call paths that held
// connections longest get the most distinct colours; red is kept for leak markers.
import type { Timeline } from './pool-timeline';

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f', '#ff9da7', '#17becf', '#bcbd22', '#8c6d31', '#7b4173'];
const OTHER = '#bab0ac';

export function callPathColors(timeline: Timeline): ReadonlyMap<string, string> {
  const held = new Map<string, number>();
  for (const pool of timeline.pools) {
    for (const lease of pool.leases) held.set(lease.callPath, (held.get(lease.callPath) ?? 0) + lease.endMs - (lease.grantedMs ?? lease.endMs));
    for (const lease of pool.failed) if (!held.has(lease.callPath)) held.set(lease.callPath, 0);
  }
  const ranked = [...held].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return new Map(ranked.map(([callPath], index) => [callPath, PALETTE[index] ?? OTHER]));
}
