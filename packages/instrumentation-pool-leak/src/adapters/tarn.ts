import type { PoolAdapter } from './adapter';

/** tarn: scaffold, patches nothing yet (being written). */
export const tarnAdapter: PoolAdapter = {
  library: 'tarn',
  moduleDefinitions() {
    return [];
  },
};
