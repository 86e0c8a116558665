// The parts of Prisma 7's client runtime (`@prisma/client/runtime/client`) the call-site hook uses.

/** A generated client's class, as `getPrismaClient(config)` returns it. */
export interface PrismaClientClass {
  new (...args: unknown[]): object;
  readonly prototype: { $transaction: (this: unknown, ...args: unknown[]) => unknown };
}

/** The runtime module's exports (only `getPrismaClient` is read). */
export interface PrismaRuntime {
  getPrismaClient: (this: unknown, ...args: unknown[]) => PrismaClientClass;
}

/** A Prisma promise: a plain object whose methods start its request on first call. */
export type PrismaPromiseLike = Partial<Record<'then' | 'catch' | 'finally', (this: unknown, ...args: unknown[]) => unknown>>;
