import { Semaphore } from '../../src/core/semaphore.js';
import { poolContract } from './pool-contract.js';

poolContract('in-process Semaphore', (size) =>
  Promise.resolve({ pool: new Semaphore(size), close: () => Promise.resolve() }),
);
