import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { deleteKeys, redisAvailable, redisUrl, testPrefix } from '../pool/redis.js';
import { startPrivateRedis } from '../pool/redis-server.js';
import { createThrowawayDatabase, postgresAvailable } from '../store/postgres-database.js';
import { postJson, runLoad } from './load.js';
import { killServers, spawnServer, type ServerProcess } from './server-process.js';

// Several real server processes sharing one PostgreSQL database and one courier pool in
// Redis, as the README's "Scaling out" runs them.

const ready = (await postgresAvailable()) && (await redisAvailable());
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await killServers();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** startInstances starts `count` servers on one fresh database and one fresh pool prefix. */
async function startInstances(
  count: number,
  env: Record<string, string> = {},
): Promise<{ servers: ServerProcess[]; ports: number[]; prefix: string }> {
  const database = await createThrowawayDatabase();
  const prefix = testPrefix();
  cleanups.push(async () => {
    await database.drop();
    await deleteKeys(prefix);
  });
  const servers = Array.from({ length: count }, () =>
    spawnServer({
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      COURIER_POOL_SIZE: '5',
      ...env,
    }),
  );
  const ports = await Promise.all(servers.map((server) => server.listening()));
  return { servers, ports, prefix };
}

const courierOrder = (id: string, courierMs: number) => ({
  order_id: id,
  amount: 1,
  delay_ms: { payment: 1, vendor: 1, courier: courierMs },
});

describe.skipIf(!ready)('three instances, one PostgreSQL database, one Redis', () => {
  it('never hold more couriers than the pool has, read in Redis while they serve', async () => {
    const { ports, prefix } = await startInstances(3);
    const reader = new Redis(redisUrl);
    let peak = 0;
    const flag = { watching: true };
    const watch = (async () => {
      while (flag.watching) {
        peak = Math.max(peak, await reader.zcard(`${prefix}:holders`));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const loads = await Promise.all(
      ports.map((port, i) =>
        runLoad({
          port,
          clients: 10,
          perClient: 6,
          body: (n) => courierOrder(`bound-${i}-${n}`, 20),
        }),
      ),
    );
    flag.watching = false;
    await watch;
    reader.disconnect();
    const statuses = loads.flat().map((sent) => sent.status);
    expect(statuses.filter((status) => status !== 200)).toStrictEqual([]);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(5);
  }, 60_000);

  it('an order whose client leaves while it waits for a courier leaves the shared queue', async () => {
    const { ports, prefix } = await startInstances(2, { COURIER_POOL_SIZE: '1' });
    const [a = 0, b = 0] = ports;
    const holding = postJson(a, courierOrder('holds', 1500));
    const reader = new Redis(redisUrl);
    await expect.poll(() => reader.zcard(`${prefix}:holders`)).toBe(1);
    const leaving = new AbortController();
    const waiting = fetch(`http://127.0.0.1:${b}/order`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(courierOrder('leaves', 1)),
      signal: leaving.signal,
    }).catch(() => undefined);
    await expect.poll(() => reader.zcard(`${prefix}:queue`)).toBe(1);
    leaving.abort();
    await waiting;
    await expect.poll(() => reader.zcard(`${prefix}:queue`)).toBe(0);
    expect((await holding).status).toBe(200);
    reader.disconnect();
  }, 30_000);

  it('kill -9 of an instance holding every courier: the others are served within the lease + 1 s', async () => {
    const leaseMs = 1000;
    const { servers, ports, prefix } = await startInstances(2, {
      COURIER_LEASE_MS: String(leaseMs),
    });
    const [holder, other] = servers as [ServerProcess, ServerProcess];
    const reader = new Redis(redisUrl);
    const held = Array.from({ length: 5 }, (_, i) =>
      postJson(ports[0] ?? 0, courierOrder(`held-${i}`, 60_000)).catch(() => undefined),
    );
    await expect.poll(() => reader.zcard(`${prefix}:holders`)).toBe(5);
    holder.child.kill('SIGKILL');
    await holder.exited;
    await Promise.all(held);
    const startedAt = performance.now();
    const served = await postJson(ports[1] ?? 0, courierOrder('after-kill', 1));
    const tookMs = performance.now() - startedAt;
    expect(served.status).toBe(200);
    expect(tookMs).toBeLessThan(leaseMs + 1000);
    expect(other.child.exitCode).toBeNull();
    reader.disconnect();
  }, 30_000);
});

describe.skipIf(!ready)('an instance whose Redis fails', () => {
  it('answers 503 unavailable before the deadline and /readyz 503, and recovers by itself', async () => {
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.kill());
    const database = await createThrowawayDatabase();
    cleanups.push(() => database.drop());
    const server = spawnServer({ DATABASE_URL: database.url, REDIS_URL: redis.url });
    const port = await server.listening();
    expect((await postJson(port, courierOrder('before', 1))).status).toBe(200);

    await redis.kill();
    await expect
      .poll(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status)
      .toBe(503);
    const startedAt = performance.now();
    const refused = await postJson(port, courierOrder('during', 1));
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error: { kind: 'unavailable' } });
    expect(performance.now() - startedAt).toBeLessThan(2000);

    await redis.start();
    await expect
      .poll(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status, {
        timeout: 15_000,
      })
      .toBe(200);
    expect((await postJson(port, courierOrder('after', 1))).status).toBe(200);
  }, 60_000);
});

describe.skipIf(!ready)('WORKERS', () => {
  it('WORKERS=2 serves on one port from two processes', async () => {
    const database = await createThrowawayDatabase();
    const prefix = testPrefix();
    cleanups.push(async () => {
      await database.drop();
      await deleteKeys(prefix);
    });
    const server = spawnServer({
      WORKERS: '2',
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
    });
    const port = await server.listening();
    // Both workers listen before the clients connect, so the connections spread over both.
    await server.waitForOutput(/Server listening[\s\S]*Server listening/);
    const sent = await runLoad({
      port,
      clients: 8,
      perClient: 10,
      body: (n) => courierOrder(`w-${n}`, 1),
    });
    expect(sent.every((s) => s.status === 200)).toBe(true);
    const pids = new Set(
      [...server.output().matchAll(/"pid":(\d+)[^\n]*"msg":"request completed"/g)].map((m) => m[1]),
    );
    expect(pids.size).toBe(2);
  }, 60_000);

  it('refuses WORKERS=2 without shared stores, saying why', async () => {
    const server = spawnServer({ WORKERS: '2' });
    const { code } = await server.exited;
    expect(code).not.toBe(0);
    expect(server.output()).toContain('WORKERS=2 needs a courier pool and an order store shared');
  });
});
