/**
 * order-pipeline/stores: the durable order stores — the embedded SQLite store (the server's
 * default) and the shared PostgreSQL store — and the factory that opens one by name.
 */
export {
  openSqliteOrderStore,
  SqliteOrderStore,
  type SqliteStoreOptions,
} from './store/sqlite-order-store.js';
export {
  openPostgresOrderStore,
  PostgresOrderStore,
  type PostgresStoreOptions,
} from './store/postgres-order-store.js';
export { migrations, type Migration } from './store/postgres-migrations.js';
export { openOrderStore, type OpenOrderStoreOptions } from './store/open-order-store.js';
export {
  orderStoreKinds,
  storeSyncLevels,
  type OrderStoreKind,
  type StoreSync,
} from './store/store-kinds.js';
