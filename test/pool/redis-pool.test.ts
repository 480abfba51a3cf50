import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisPool } from '../../src/pool/redis-pool.js';
import { poolContract } from '../core/pool-contract.js';
import { deleteKeys, redisAvailable, redisUrl, testPrefix } from './redis.js';

describe.skipIf(!(await redisAvailable()))('Redis', () => {
  poolContract('RedisPool', async (size) => {
    const prefix = testPrefix();
    const pool = await RedisPool.open({ url: redisUrl, size, prefix, leaseMs: 2000 });
    return {
      pool,
      close: async () => {
        await pool.close();
        await deleteKeys(prefix);
      },
    };
  });
});

describe.skipIf(!(await redisAvailable()))('RedisPool across instances', () => {
  const prefixes: string[] = [];
  const pools: RedisPool[] = [];
  afterEach(async () => {
    for (const pool of pools.splice(0)) await pool.close();
    for (const prefix of prefixes.splice(0)) await deleteKeys(prefix);
  });
  const openShared = async (count: number, size: number, leaseMs = 2000) => {
    const prefix = testPrefix();
    prefixes.push(prefix);
    const opened = await Promise.all(
      Array.from({ length: count }, () => RedisPool.open({ url: redisUrl, size, prefix, leaseMs })),
    );
    pools.push(...opened);
    return { prefix, pools: opened };
  };

  it('never holds more than the size across three instances (read in Redis under load)', async () => {
    const { prefix, pools: shared } = await openShared(3, 4);
    const reader = new Redis(redisUrl);
    let peak = 0;
    const flag = { running: true };
    const watching = (async () => {
      while (flag.running) {
        peak = Math.max(peak, await reader.zcard(`${prefix}:holders`));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await Promise.all(
      Array.from({ length: 90 }, async (_, i) => {
        const permit = await (shared[i % 3] as RedisPool).acquire();
        await new Promise((resolve) => setTimeout(resolve, 3));
        permit.release();
      }),
    );
    flag.running = false;
    await watching;
    reader.disconnect();
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(4);
  });

  it('serves waiters of different instances in arrival order', async () => {
    const { pools: shared } = await openShared(2, 1);
    const [a, b] = shared as [RedisPool, RedisPool];
    const held = await a.acquire();
    const order: string[] = [];
    const waits: Promise<void>[] = [];
    for (const [name, pool] of [
      ['b1', b],
      ['a1', a],
      ['b2', b],
    ] as const) {
      const waiting = pool.acquire();
      // Arrival order across two connections: wait until Redis has queued this one.
      await expect.poll(() => pool.waiting).toBeGreaterThanOrEqual(order.length + waits.length + 1);
      waits.push(
        waiting.then((permit) => {
          order.push(name);
          permit.release();
        }),
      );
    }
    held.release();
    await Promise.all(waits);
    expect(order).toStrictEqual(['b1', 'a1', 'b2']);
  });

  it('the slots of an instance that died come back after their lease', async () => {
    const leaseMs = 400;
    const { pools: shared } = await openShared(2, 2, leaseMs);
    const [dead, alive] = shared as [RedisPool, RedisPool];
    await dead.acquire();
    await dead.acquire();
    // The instance stops renewing: as if killed, its permits never released.
    await dead.close();
    const startedAt = performance.now();
    const permit = await alive.acquire();
    const waitedMs = performance.now() - startedAt;
    expect(waitedMs).toBeLessThan(leaseMs + 1000);
    permit.release();
  });
});
