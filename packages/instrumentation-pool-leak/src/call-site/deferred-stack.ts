/**
 * The frames of a checkout whose span does not record, captured at the checkout but not yet read:
 * a request that arrives unsampled (head sampling keeps a few percent) pays for the capture only.
 * The frames are read — exactly as an eager capture reads them, through the same cache — the
 * first time something needs the call site: a leak report, a holders list, a foreign-use count.
 * Most leases are checked in before that and never read them.
 */
export class DeferredStack<S> {
  private frames: unknown;
  private resolved: S | undefined;

  private constructor(
    frames: unknown,
    private readonly read: (frames: never) => S | undefined,
  ) {
    this.frames = frames;
  }

  /** `frames`, read by `read` when first resolved (the reader is shared, the frames are this checkout's). */
  static of<F, S>(frames: F, read: (frames: F) => S | undefined): DeferredStack<S> {
    return new DeferredStack<S>(frames, read);
  }

  /** The captured stack, read once; the frames are let go of afterwards. */
  resolve(): S | undefined {
    const frames = this.frames;
    if (frames === undefined) return this.resolved;
    this.frames = undefined;
    this.resolved = (this.read as (frames: unknown) => S | undefined)(frames);
    return this.resolved;
  }
}
