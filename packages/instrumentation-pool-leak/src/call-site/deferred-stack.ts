/**
 * The frames of a checkout whose span does not record, captured and trimmed to the windows rule
 * at the checkout, but not yet read: a request that arrives unsampled (head sampling keeps a few
 * percent) pays for the capture only. The frames are read — exactly as an eager capture reads
 * them, through the same cache — the first time something needs the call site: a leak report, a
 * holders list, a foreign-use count. Most leases are checked in before that and never read them.
 */
export class DeferredStack<S> {
  private sites: readonly NodeJS.CallSite[] | undefined;
  private resolved: S | undefined;

  constructor(
    sites: readonly NodeJS.CallSite[],
    private readonly read: (sites: readonly NodeJS.CallSite[]) => S | undefined,
  ) {
    this.sites = sites;
  }

  /** The captured stack, read once; the frames are let go of afterwards. */
  resolve(): S | undefined {
    const sites = this.sites;
    if (sites === undefined) return this.resolved;
    this.sites = undefined;
    this.resolved = this.read(sites);
    return this.resolved;
  }
}
