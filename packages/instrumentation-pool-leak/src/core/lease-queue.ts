/**
 * What an item carries to sit in a {@link LeaseQueue}: its neighbours and the queue it is in. An
 * item is in one queue at most (a lease is waiting or held, never both).
 */
export interface Queued {
  queuePrev: Queued | undefined;
  queueNext: Queued | undefined;
  queuedIn: object | undefined;
}

/**
 * A pool's open leases in the order their clock started (request for the waiting ones, grant for
 * the held ones), linked through the leases themselves: joining and leaving are a few field
 * writes, with no table to grow, rehash or shrink (a V8 Set that churns one entry per checkout
 * rehashes every few operations, and one that once held 100 000 entries stays slow until it is
 * re-created). The same order is what the sweeps walk: `unswept` is the first item the sweep
 * over this queue has not passed, so a sweep starts where the last one stopped and never passes
 * an item twice.
 */
export class LeaseQueue<T extends Queued> implements Iterable<T> {
  private head: T | undefined;
  private tail: T | undefined;
  private count = 0;
  /** The first item no sweep has passed yet; undefined when every item was passed. */
  unswept: T | undefined;

  get size(): number {
    return this.count;
  }

  /** Adds `item` at the end (it is the youngest); it must be in no queue. */
  append(item: T): void {
    item.queuedIn = this;
    item.queuePrev = this.tail;
    item.queueNext = undefined;
    if (this.tail === undefined) this.head = item;
    else this.tail.queueNext = item;
    this.tail = item;
    this.count++;
    this.unswept ??= item;
  }

  /** Takes `item` out; false if it is not in this queue. */
  remove(item: T): boolean {
    if (item.queuedIn !== this) return false;
    const prev = item.queuePrev as T | undefined;
    const next = item.queueNext as T | undefined;
    if (prev === undefined) this.head = next;
    else prev.queueNext = next;
    if (next === undefined) this.tail = prev;
    else next.queuePrev = prev;
    if (this.unswept === item) this.unswept = next;
    item.queuedIn = item.queuePrev = item.queueNext = undefined;
    this.count--;
    return true;
  }

  /** The item after `item` in this queue. */
  after(item: T): T | undefined {
    return item.queueNext as T | undefined;
  }

  /** Oldest first. The queue must not change during the walk: copy it first (`[...queue]`) to change it. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let item = this.head; item !== undefined; item = item.queueNext as T | undefined) yield item;
  }
}
