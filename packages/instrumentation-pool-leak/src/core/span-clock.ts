import type { HrTime } from '@opentelemetry/api';

/** How often the wall clock is read again, to follow it when it is stepped or drifts. */
const RESAMPLE_EVERY_MS = 60_000;
/**
 * A new reading replaces the offset only when it moved more than this: `Date.now()` has
 * millisecond steps, so readings of an unchanged clock differ by up to one.
 */
const MOVED_MS = 1.5;
const NANOS_PER_MS = 1e6;
const NANOS_PER_SECOND = 1e9;

/**
 * Lease times (`performance.now()` milliseconds) as span times, through one wall-clock offset
 * shared by every checkout span of a core.
 *
 * Why not hand the SDK the `performance.now()` number: it converts it with an offset it measures
 * when that span is created (`Date.now()`, then `performance.now()`), rounded to the millisecond
 * and stretched by any pause between the two reads. Two spans' offsets differed by up to 2 ms on a
 * quiet machine and 4.3 ms on a loaded one: one lease's end then came after the next lease's
 * grant, and a pool of three showed four connections held at once. With one offset, times of
 * different spans keep the order they had in the process.
 */
export class SpanClock {
  private offsetMs = 0;
  /** The epoch time of `performance.now()` = 0, after the offset, split for exact nanoseconds. */
  private originSeconds = 0;
  private originNanos = 0;
  private sampledAt = performance.now();

  constructor() {
    this.adopt(wallClockOffset());
  }

  /** `monotonicMs` (a `performance.now()` reading) as an OpenTelemetry time. */
  toSpanTime(monotonicMs: number): HrTime {
    if (monotonicMs - this.sampledAt > RESAMPLE_EVERY_MS) this.resample(monotonicMs);
    const wholeMs = Math.floor(monotonicMs);
    const nanos = this.originNanos + (wholeMs % 1000) * NANOS_PER_MS + Math.round((monotonicMs - wholeMs) * NANOS_PER_MS);
    const carry = Math.floor(nanos / NANOS_PER_SECOND);
    return [this.originSeconds + Math.floor(wholeMs / 1000) + carry, nanos - carry * NANOS_PER_SECOND];
  }

  private resample(now: number): void {
    this.sampledAt = now;
    const reading = wallClockOffset();
    if (Math.abs(reading - this.offsetMs) > MOVED_MS) this.adopt(reading);
  }

  private adopt(offsetMs: number): void {
    this.offsetMs = offsetMs;
    const originMs = performance.timeOrigin + offsetMs;
    this.originSeconds = Math.floor(originMs / 1000);
    this.originNanos = Math.round((originMs - this.originSeconds * 1000) * NANOS_PER_MS);
  }
}

/**
 * `Date.now()` minus the epoch time `performance.now()` stands for. A pause between the two reads
 * only lowers a reading: the larger of two back-to-back readings is kept.
 */
function wallClockOffset(): number {
  return Math.max(oneReading(), oneReading());
}

function oneReading(): number {
  const wall = Date.now();
  return wall - (performance.timeOrigin + performance.now());
}
