import { describe, expect, it } from 'vitest';
import { defaultConfig, loadConfig } from '../src/config.js';
import { serverOf, startupSummary } from '../src/startup-summary.js';

describe('serverOf', () => {
  it.each([
    ['postgres://orders:s3cret@db.internal:5432/orders', 'db.internal:5432/orders'],
    ['postgres://db.internal/orders?password=s3cret&sslmode=require', 'db.internal/orders'],
    ['postgresql://u@[::1]:5433/o', '[::1]:5433/o'],
    ['redis://:s3cret@cache.internal:6379/2', 'cache.internal:6379/2'],
    ['rediss://default:s3cret@cache.internal:6380', 'cache.internal:6380'],
    ['host=db.internal password=s3cret', '(not a URL)'],
  ])('shows %s as %s', (url, want) => {
    expect(serverOf(url)).toBe(want);
  });
});

describe('startupSummary', () => {
  it('names PostgreSQL and the Redis pool with their servers, prefix, size and workers, and no secret', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://orders:pg-secret@db.internal:5432/orders',
      REDIS_URL: 'redis://:redis-secret@cache.internal:6379',
      REDIS_KEY_PREFIX: 'prod:couriers',
      COURIER_POOL_SIZE: '8',
      WORKERS: '4',
    });
    const summary = startupSummary(config);
    expect(summary).toStrictEqual({
      store: 'postgres',
      database: 'db.internal:5432/orders',
      courier_pool: 'redis',
      redis: 'cache.internal:6379',
      redis_key_prefix: 'prod:couriers',
      courier_pool_size: 8,
      workers: 4,
    });
    expect(JSON.stringify(summary)).not.toMatch(/secret/);
  });

  it('names the embedded store by its directory and the in-process pool', () => {
    expect(startupSummary(defaultConfig)).toStrictEqual({
      store: 'sqlite',
      data_dir: defaultConfig.dataDir,
      courier_pool: 'in_process',
      courier_pool_size: defaultConfig.courierPoolSize,
      workers: 1,
    });
    expect(startupSummary({ ...defaultConfig, orderStore: 'memory' })).toStrictEqual({
      store: 'memory',
      courier_pool: 'in_process',
      courier_pool_size: defaultConfig.courierPoolSize,
      workers: 1,
    });
  });
});
