/**
 * Query objects built during the current synchronous run of the application (until the next
 * microtask), for thenable query builders whose call site is taken where the query is built.
 *
 * `return db.select().from(t)` in a plain service function, awaited by its caller: the await
 * reads the query's `then` in the same synchronous run that built it, in the caller's frame —
 * the build site (the service function) is the one that caused the query, and stays. A query
 * built earlier (at start-up, before an `await`) and awaited now is a query run again from
 * where it is awaited: the reader's site is taken. Clearing needs no per-object work: the set
 * is replaced once per run in which anything was built.
 */
export class FreshBuilds {
  private built = new WeakSet<object>();
  private clearScheduled = false;
  private readonly clear = (): void => {
    this.built = new WeakSet();
    this.clearScheduled = false;
  };

  /** `target` was built just now, by the application's call of the library. */
  add(target: unknown): void {
    if ((typeof target !== 'object' && typeof target !== 'function') || target === null) return;
    this.built.add(target);
    if (!this.clearScheduled) {
      this.clearScheduled = true;
      queueMicrotask(this.clear);
    }
  }

  /** Whether `target` was built in the synchronous run going on now. */
  has(target: object): boolean {
    return this.built.has(target);
  }
}
