import type { ExhaustionCause } from './exhaustion-cause';

/** The property of a pool's exhausted error that names its holders; never enumerable. */
export const POOL_HOLDERS_PROPERTY = 'poolHolders';
/** The property beside it with the verdict (`pool.exhaustion.cause`); never enumerable. */
export const POOL_EXHAUSTION_CAUSE_PROPERTY = 'poolExhaustionCause';

/**
 * Puts the holders on the pool's own timeout/exhausted error before the application sees it: a
 * non-enumerable, frozen `poolHolders` array and the verdict as `poolExhaustionCause`, both
 * invisible to `message`, `stack`, `JSON.stringify` and default `util.inspect`. With `appendToMessage`, the holders are also appended to the
 * message and to the first line of the stack, so the log line the application writes names them.
 * An error that is not an extensible object, or already has the property, is left as it is.
 */
export function attachPoolHolders(
  error: unknown,
  holders: readonly string[],
  cause: ExhaustionCause | undefined,
  appendToMessage: boolean,
): void {
  if (typeof error !== 'object' || error === null || !Object.isExtensible(error)) return;
  if (Object.prototype.hasOwnProperty.call(error, POOL_HOLDERS_PROPERTY)) return;
  Object.defineProperty(error, POOL_HOLDERS_PROPERTY, {
    value: Object.isFrozen(holders) ? holders : Object.freeze([...holders]),
    enumerable: false,
    writable: true,
    configurable: true,
  });
  if (cause !== undefined) {
    Object.defineProperty(error, POOL_EXHAUSTION_CAUSE_PROPERTY, { value: cause, enumerable: false, writable: true, configurable: true });
  }
  if (appendToMessage && holders.length > 0 && error instanceof Error) appendHolders(error, holders);
}

function appendHolders(error: Error, holders: readonly string[]): void {
  const message = error.message;
  const enriched = `${message}; pool holders: ${holders.join('; ')}`;
  const stack = error.stack;
  const header = `${error.name}: ${message}`;
  error.message = enriched;
  // The stack's first line was written from the old message when the error was built.
  if (typeof stack === 'string' && stack.startsWith(header)) {
    error.stack = `${error.name}: ${enriched}${stack.slice(header.length)}`;
  }
}
