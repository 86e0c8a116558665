// The generic-pool workload of the coexistence suites: acquire and release, a waiter served from
// the queue, acquire with a priority, and an acquire refused by a draining pool.
import { GenericPoolInstrumentation } from '@opentelemetry/instrumentation-generic-pool';
import type * as GenericPoolModule from 'generic-pool';
import { outcomeOf, requireLibrary, resourceFactory } from '../support/in-memory-resources';
import type { CoexistenceCase } from './coexistence';

export const genericPoolCase: CoexistenceCase = {
  checkoutSpan: 'generic-pool checkout',
  contribScope: '@opentelemetry/instrumentation-generic-pool',
  createContrib: () => new GenericPoolInstrumentation(),
  // holder, waiter, prioritised, refused.
  checkouts: 4,
  contribSpans: 3,
  load() {
    const genericPool = requireLibrary<typeof GenericPoolModule>('generic-pool');
    return {
      async run(inRequest) {
        const pool = genericPool.createPool(resourceFactory(), { max: 1 });
        const held = await inRequest('holder request', () => pool.acquire());
        const waiter = inRequest('waiter request', () => outcomeOf(pool.acquire().then((resource) => pool.release(resource).then(() => resource))));
        await pool.release(held);
        const waited = await waiter;
        const prioritised = await inRequest('priority request', () =>
          outcomeOf(pool.acquire(1).then((resource) => pool.release(resource).then(() => resource))),
        );
        await pool.drain();
        const refused = await inRequest('refused request', () => outcomeOf(pool.acquire()));
        await pool.clear();
        return [await outcomeOf(Promise.resolve(held)), waited, prioritised, refused];
      },
      // Every run drains and clears its own pool.
      close: async () => {},
    };
  },
};
