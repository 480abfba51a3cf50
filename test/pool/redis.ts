import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

/** The Redis the tests use; each test run works under a key prefix of its own. */
export const redisUrl = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** testPrefix is a fresh key prefix, so runs never see each other's keys. */
export function testPrefix(): string {
  return `order-pipeline-test:${randomUUID().slice(0, 12)}`;
}

/** deleteKeys removes every key under `prefix`. */
export async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/**
 * redisAvailable tells whether the test Redis answers. Outside CI the Redis tests are skipped
 * when it does not; in CI (CI=true) they run and fail.
 */
export async function redisAvailable(): Promise<boolean> {
  if (process.env['CI'] === 'true') return true;
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return true;
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}
