import type { PoolAdapter } from './adapter';

/** mysql2: scaffold, patches nothing yet (being written). */
export const mysql2Adapter: PoolAdapter = {
  library: 'mysql2',
  moduleDefinitions() {
    return [];
  },
};
