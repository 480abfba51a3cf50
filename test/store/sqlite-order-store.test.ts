import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteOrderStore } from '../../src/store/sqlite-order-store.js';
import { orderStoreContract } from './order-store-contract.js';

orderStoreContract('SQLite', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'order-store-'));
  return {
    store: await openSqliteOrderStore({ dataDir, sync: 'normal' }),
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
});

orderStoreContract('SQLite, synchronous FULL on a writer thread', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'order-store-full-'));
  return {
    store: await openSqliteOrderStore({ dataDir, sync: 'full' }),
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
});
