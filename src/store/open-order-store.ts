import type { Config } from '../config.js';
import { MemoryOrderStore } from './memory-order-store.js';
import type { OrderStore } from './order-store.js';
import { openPgliteOrderStore } from './pglite-order-store.js';
import { openPostgresOrderStore } from './postgres-order-store.js';

/**
 * openOrderStore opens the store the configuration names, migrated and ready. Rejects with
 * the store's error if it cannot be opened (unreachable database, unusable directory).
 */
export function openOrderStore(
  config: Pick<Config, 'orderStore' | 'dataDir' | 'databaseUrl' | 'databasePoolSize'>,
): Promise<OrderStore> {
  switch (config.orderStore) {
    case 'memory':
      return Promise.resolve(new MemoryOrderStore());
    case 'pglite':
      return openPgliteOrderStore(config.dataDir);
    case 'postgres':
      if (config.databaseUrl === undefined) {
        return Promise.reject(new TypeError('the postgres order store needs a database URL'));
      }
      return openPostgresOrderStore({
        connectionString: config.databaseUrl,
        poolSize: config.databasePoolSize,
      });
  }
}
