import type { OrderStore } from '../ledger/order-store.js';
import { MemoryOrderStore } from './memory-order-store.js';
import { openPostgresOrderStore } from './postgres-order-store.js';
import { openSqliteOrderStore } from './sqlite-order-store.js';
import type { OrderStoreKind, StoreSync } from './store-kinds.js';

/** OpenOrderStoreOptions names a store and what opening it needs. */
export interface OpenOrderStoreOptions {
  readonly kind: OrderStoreKind;
  /** Directory of the embedded store (`sqlite`). */
  readonly dataDir: string;
  /** What a commit of the embedded store survives (`sqlite`). */
  readonly sync: StoreSync;
  /** Connection string of the shared store (`postgres`). */
  readonly databaseUrl?: string | undefined;
  /** Connections in the PostgreSQL pool (`postgres`). */
  readonly databasePoolSize: number;
}

/**
 * openOrderStore opens the store `options` names, migrated and ready. Rejects with the
 * store's error if it cannot be opened (unreachable database, unusable directory).
 */
export function openOrderStore(options: OpenOrderStoreOptions): Promise<OrderStore> {
  switch (options.kind) {
    case 'memory':
      return Promise.resolve(new MemoryOrderStore());
    case 'sqlite':
      return openSqliteOrderStore({ dataDir: options.dataDir, sync: options.sync });
    case 'postgres':
      if (options.databaseUrl === undefined) {
        return Promise.reject(new TypeError('the postgres order store needs a database URL'));
      }
      return openPostgresOrderStore({
        connectionString: options.databaseUrl,
        poolSize: options.databasePoolSize,
      });
  }
}
