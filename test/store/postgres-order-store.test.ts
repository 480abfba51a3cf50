import { describe } from 'vitest';
import { openPostgresOrderStore } from '../../src/store/postgres-order-store.js';
import { orderStoreContract } from './order-store-contract.js';
import { createThrowawayDatabase, postgresAvailable } from './postgres-database.js';

describe.skipIf(!(await postgresAvailable()))('PostgreSQL', () => {
  orderStoreContract('PostgreSQL', async () => {
    const database = await createThrowawayDatabase();
    return {
      store: await openPostgresOrderStore({ connectionString: database.url, poolSize: 10 }),
      cleanup: () => database.drop(),
    };
  });
});
