// The parts of generic-pool 3.x this adapter touches. Internal to the adapter; never exported
// from the package. Only public members of the library's Pool are used.

/** A generic-pool `Pool` (3.x): everything below is public API of the library. */
export interface GenericPool {
  /** Resources created plus those being created. */
  readonly size: number;
  /** Idle resources ready to lend. */
  readonly available: number;
  /** Resources lent out. */
  readonly borrowed: number;
  /** Acquire requests queued. */
  readonly pending: number;
  readonly max: number;
  /** `max` minus resources created or being created. */
  readonly spareResourceCapacity: number;
  acquire(priority?: number): PromiseLike<unknown>;
  release(resource: unknown): PromiseLike<void>;
  destroy(resource: unknown): PromiseLike<void>;
  isBorrowedResource(resource: unknown): boolean;
}

export interface GenericPoolConstructor {
  prototype: GenericPool;
}

export interface GenericPoolModule {
  Pool: GenericPoolConstructor;
}
