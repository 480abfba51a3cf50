/**
 * The names of the order stores and of the embedded store's sync levels: spelled once here,
 * read by the configuration and by the factory that opens a store.
 */

/**
 * Where orders are recorded: `sqlite` (embedded, the default), `postgres` (shared by several
 * instances) or `memory` (nothing survives a restart).
 */
export const orderStoreKinds = ['sqlite', 'postgres', 'memory'] as const;
export type OrderStoreKind = (typeof orderStoreKinds)[number];

/**
 * What a commit of the embedded store survives: `normal`, a crash of the process; `full`,
 * also a crash of the machine or a power loss (every commit is flushed to the disk).
 */
export const storeSyncLevels = ['normal', 'full'] as const;
export type StoreSync = (typeof storeSyncLevels)[number];
