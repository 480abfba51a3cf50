import { afterAll, describe, expect, it } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { PoolUnavailableError, RedisPool } from '../../src/pool/redis-pool.js';
import { startPrivateRedis, type PrivateRedis } from './redis-server.js';

// A Redis of this test's own, killed and restarted: failures are answered, not hung.

const hasRedisServer = await startPrivateRedis().then(
  async (redis) => {
    await redis.kill();
    return true;
  },
  () => false,
);

describe.skipIf(!hasRedisServer && process.env['CI'] !== 'true')(
  'RedisPool when Redis fails',
  () => {
    let redis: PrivateRedis | undefined;
    let pool: RedisPool | undefined;
    afterAll(async () => {
      await pool?.close();
      await redis?.kill();
    });

    it('answers unavailable at once while Redis is down, and serves again once it is back', async () => {
      redis = await startPrivateRedis();
      pool = await RedisPool.open({ url: redis.url, size: 1, prefix: 'outage', leaseMs: 1000 });
      const held = await pool.acquire();
      // Settled (and so handled) whenever it settles, looked at below.
      const waiting = pool.acquire(new CancelSource()).then(
        () => 'granted',
        (error: unknown) => error,
      );
      await expect.poll(() => pool?.waiting).toBe(1);

      await redis.kill();
      // The waiter is told at once: its slot can no longer be granted.
      expect(await waiting).toBeInstanceOf(PoolUnavailableError);
      await expect.poll(() => pool?.ready).toBe(false);
      const startedAt = performance.now();
      await expect(pool.acquire()).rejects.toBeInstanceOf(PoolUnavailableError);
      expect(performance.now() - startedAt).toBeLessThan(1500);
      // Releasing while Redis is down throws nothing; the slot returns with its lease.
      held.release();

      await redis.start();
      await expect.poll(() => pool?.ready, { timeout: 10_000 }).toBe(true);
      const permit = await pool.acquire();
      permit.release();
    }, 30_000);
  },
);
