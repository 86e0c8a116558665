// Leases onto connection lanes: greedy by start, each lease into the lowest lane that is free when
// it starts. That is interval partitioning, so the lanes used are exactly the most leases open at
// once (the observed concurrency, both counted with the same hand-over allowance).

export interface Interval {
  readonly startMs: number;
  readonly endMs: number;
}

/** The lane of each interval (same order as given), and how many lanes were used. */
export function assignLanes(intervals: readonly Interval[]): { readonly lanes: number[]; readonly count: number } {
  const order = intervals.map((_, index) => index).sort((a, b) => startOf(intervals, a) - startOf(intervals, b) || endOf(intervals, a) - endOf(intervals, b));
  const laneEnds: number[] = [];
  const lanes = new Array<number>(intervals.length).fill(0);
  for (const index of order) {
    const start = startOf(intervals, index);
    let lane = laneEnds.findIndex((end) => end <= start);
    if (lane < 0) lane = laneEnds.push(0) - 1;
    laneEnds[lane] = endOf(intervals, index);
    lanes[index] = lane;
  }
  return { lanes, count: laneEnds.length };
}

/** The most intervals open at one instant (an interval ending when another starts does not overlap it). */
export function maxConcurrency(intervals: readonly Interval[]): number {
  const edges = intervals.flatMap((interval, index) => [
    { at: interval.startMs, delta: 1 },
    { at: endOf(intervals, index), delta: -1 },
  ]);
  // Ends before starts at the same instant.
  edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let open = 0;
  let most = 0;
  for (const edge of edges) {
    open += edge.delta;
    most = Math.max(most, open);
  }
  return most;
}

function startOf(intervals: readonly Interval[], index: number): number {
  return intervals[index]?.startMs ?? 0;
}

/** A lease held for no measurable time still held its connection for an instant. */
const INSTANT_MS = 0.001;
/**
 * A pool hands a returned connection to the next waiter inside the release call, before the
 * instrumentation ends the returning lease's span: that lease's end comes a fraction of a
 * millisecond after the next grant. Ends this close to a start count as handed over.
 */
export const HANDOVER_MS = 2;

function endOf(intervals: readonly Interval[], index: number): number {
  const interval = intervals[index];
  return interval === undefined ? 0 : Math.max(interval.endMs - HANDOVER_MS, interval.startMs + INSTANT_MS);
}
