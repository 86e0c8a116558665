// The parts of tarn 3.x this adapter touches. Internal to the adapter; never exported from the
// package.

/** What `Pool.prototype.acquire` returns: the request, whose `promise` settles with the grant. */
export interface TarnPendingOperation {
  /** Reassigned by tarn itself after construction; the adapter does the same. */
  promise: PromiseLike<unknown>;
  abort(): void;
}

/** A tarn `Pool` (3.x). `max` is a protected field in tarn's typings, but a plain property. */
export interface TarnPool {
  readonly max: number;
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
  acquire(): TarnPendingOperation;
  /** True when the resource was lent by this pool and is now back; false otherwise. */
  release(resource: unknown): boolean;
}

export interface TarnPoolConstructor {
  prototype: TarnPool;
}

export interface TarnModule {
  Pool: TarnPoolConstructor;
  /** The class of acquire-timeout errors (tarn sets no `name` on them). */
  TimeoutError?: Function;
}
