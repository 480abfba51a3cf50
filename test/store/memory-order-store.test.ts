import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { orderStoreContract } from './order-store-contract.js';

orderStoreContract('memory', () => Promise.resolve({ store: new MemoryOrderStore() }));
