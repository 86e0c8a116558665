import type { PoolAdapter } from './adapter';

/** mariadb: scaffold, patches nothing yet (being written). */
export const mariadbAdapter: PoolAdapter = {
  library: 'mariadb',
  moduleDefinitions() {
    return [];
  },
};
