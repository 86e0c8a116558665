// Which frame of a call path the report names. `pool.call_path` lists application frames
// innermost first, so every caller of a helper starts with the helper's frame: naming the first
// frame would name the helper for all of them. Seen as a tree from the pool outwards, the call
// paths that start alike fork where a helper's callers part; the report names a path by the
// frame just past its first fork — the helper's caller — and says which frames it went through.
// A path that shares no frame with another is named by its first frame, as code.* would be.

/** Joins the frames of `pool.call_path` (DESIGN.md). */
export const CALL_PATH_SEPARATOR = ' ← ';

/** The frame a call path is named by, and the frames above it that it goes through. */
export interface Caller {
  /** The function of the naming frame (`BillingService.exportInvoice`). */
  readonly functionName: string;
  /** `file:line` of the naming frame, as the call path writes it; undefined if it has none. */
  readonly location: string | undefined;
  /** The frames before it, innermost first: the helpers every caller goes through. */
  readonly through: readonly string[];
}

const FRAME = /^(.*?) \((.+:\d+)\)$/;

/** Names call paths against every other call path it was given. */
export class CallerNamer {
  private readonly paths: readonly (readonly string[])[];

  /** `paths`: frames of each distinct call path seen (bounded by the caller's tables). */
  constructor(paths: Iterable<readonly string[]>) {
    this.paths = [...paths];
  }

  callerOf(frames: readonly string[]): Caller {
    const index = Math.min(this.firstFork(frames), frames.length - 1);
    const frame = frames[index] ?? '';
    const parsed = FRAME.exec(frame);
    return {
      functionName: parsed?.[1] ?? frame,
      location: parsed?.[2],
      through: frames.slice(0, index),
    };
  }

  /**
   * Leading frames shared up to the first fork: the fewest (but at least one) leading frames
   * `frames` has in common with another, different path that starts like it; 0 if none does.
   * Deeper forks (one caller reached from two routes) do not move the name past the caller.
   */
  private firstFork(frames: readonly string[]): number {
    let fewest = 0;
    for (const other of this.paths) {
      let common = 0;
      while (common < frames.length && common < other.length && frames[common] === other[common]) common++;
      // A path that starts elsewhere, or the same path (it is in the list too), tells nothing.
      if (common === 0 || (common === frames.length && common === other.length)) continue;
      if (fewest === 0 || common < fewest) fewest = common;
    }
    return fewest;
  }
}
