import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPgliteOrderStore } from '../../src/store/pglite-order-store.js';
import { orderStoreContract } from './contract.js';

orderStoreContract('PGlite', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'order-store-'));
  return {
    store: await openPgliteOrderStore(dataDir),
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
});
