import type { PoolAdapter } from './adapter';

/** generic-pool: scaffold, patches nothing yet (being written). */
export const genericPoolAdapter: PoolAdapter = {
  library: 'generic-pool',
  moduleDefinitions() {
    return [];
  },
};
