import http from 'node:http';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Semaphore as RedisSemaphore } from 'redis-semaphore';
import { RedisPool } from '../src/pool/redis-pool.js';
import { measured } from './http-load.js';
import { percentile, row, type Row } from './report.js';
import { startServer, type BenchServer } from './server-process.js';

/**
 * The scale-out benchmarks: the Redis courier pool against redis-semaphore (the well-known
 * library) in the same run, the wake-up of a waiter on another instance, three instances
 * sharing five couriers, and WORKERS=2 against one worker with the same stores.
 */

const redisUrl = process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const adminUrl = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const fmt = (ms: number): string => `${ms.toFixed(3)} ms`;

/** deleteKeys removes every key a benchmark made under `prefix`. */
async function deleteKeys(prefix: string): Promise<void> {
  const client = new Redis(redisUrl);
  try {
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
  } finally {
    client.disconnect();
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const startedAt = performance.now();
  await work();
  return performance.now() - startedAt;
}

async function uncontended(count: number): Promise<Row[]> {
  const prefix = `bench-${process.pid}`;
  const pool = await RedisPool.open({ url: redisUrl, size: 5, prefix, leaseMs: 10_000 });
  const client = new Redis(redisUrl);
  const ours: number[] = [];
  const theirs: number[] = [];
  try {
    for (let i = 0; i < count + 200; i++) {
      const ms = await timed(async () => {
        const permit = await pool.acquire();
        permit.release();
      });
      if (i >= 200) ours.push(ms);
    }
    const semaphore = new RedisSemaphore(client, `${prefix}-rs`, 5, {
      acquireTimeout: 10_000,
      lockTimeout: 10_000,
      refreshInterval: 0,
    });
    for (let i = 0; i < count + 200; i++) {
      const ms = await timed(async () => {
        await semaphore.acquire();
        await semaphore.release();
      });
      if (i >= 200) theirs.push(ms);
    }
  } finally {
    await pool.close();
    client.disconnect();
    await deleteKeys(prefix);
  }
  ours.sort((a, b) => a - b);
  theirs.sort((a, b) => a - b);
  // Our release is not awaited by the caller; the round trip of the next acquire includes it.
  return [
    row({
      section: 'scale-out',
      scenario: `Redis pool, uncontended acquire + release (n=${count}, loopback)`,
      value: percentile(ours, 50),
      unit: 'ms',
      figure: `p50 ${fmt(percentile(ours, 50))} · p99 ${fmt(percentile(ours, 99))}`,
      baseline: `redis-semaphore p50 ${fmt(percentile(theirs, 50))} · p99 ${fmt(percentile(theirs, 99))}`,
      target: 'p50 ≤ 0.3 ms',
      met: percentile(ours, 50) <= 0.3,
    }),
  ];
}

async function wakeUp(count: number): Promise<Row[]> {
  const prefix = `bench-wake-${process.pid}`;
  const holder = await RedisPool.open({ url: redisUrl, size: 1, prefix, leaseMs: 10_000 });
  const waiter = await RedisPool.open({ url: redisUrl, size: 1, prefix, leaseMs: 10_000 });
  const delays: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const held = await holder.acquire();
      const waiting = waiter.acquire();
      // The waiter is in line (in Redis) before the slot is released.
      while (waiter.waiting < 1) await new Promise((resolve) => setImmediate(resolve));
      const releasedAt = performance.now();
      held.release();
      const permit = await waiting;
      delays.push(performance.now() - releasedAt);
      permit.release();
      while (holder.inUse > 0 || waiter.inUse > 0) {
        await new Promise((resolve) => setImmediate(resolve));
        if (waiter.inUse > 0) break;
      }
    }
  } finally {
    await holder.close();
    await waiter.close();
    await deleteKeys(prefix);
  }
  delays.sort((a, b) => a - b);
  return [
    row({
      section: 'scale-out',
      scenario: `a waiter on another instance starts after a release (n=${count})`,
      value: percentile(delays, 99),
      unit: 'ms',
      figure: `p50 ${fmt(percentile(delays, 50))} · p99 ${fmt(percentile(delays, 99))}`,
      compare: `max ${fmt(delays.at(-1) ?? Number.NaN)} (release call to the waiter's permit)`,
      target: 'p99 ≤ 1 ms',
      met: percentile(delays, 99) <= 1,
    }),
  ];
}

/** withDatabase runs `work` with the URL of an empty database of its own, dropped afterwards. */
export async function withDatabase<T>(work: (url: string) => Promise<T>): Promise<T> {
  const name = `order_pipeline_scale_${process.pid}`;
  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  try {
    return await work(url.toString());
  } finally {
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

function postOrder(server: BenchServer, id: string, courierMs: number): Promise<number> {
  const payload = JSON.stringify({
    order_id: id,
    amount: 1,
    delay_ms: { payment: 1, vendor: 1, courier: courierMs },
  });
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${server.url}/order`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
      },
      (response) => {
        response.resume();
        response.on('end', () => {
          resolve(response.statusCode ?? 0);
        });
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

async function threeInstances(): Promise<Row[]> {
  return withDatabase(async (databaseUrl) => {
    const prefix = `bench-three-${process.pid}`;
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      COURIER_POOL_SIZE: '5',
    };
    const servers = await Promise.all([startServer(env), startServer(env), startServer(env)]);
    try {
      const startedAt = performance.now();
      const statuses = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          postOrder(servers[i % 3] as BenchServer, `three-${i}`, 100),
        ),
      );
      const tookMs = performance.now() - startedAt;
      const ok = statuses.filter((status) => status === 200).length;
      return [
        row({
          section: 'scale-out',
          scenario: 'three instances, pool 5, 60 orders whose courier takes 100 ms',
          value: tookMs,
          unit: 'ms',
          figure: `all served in ${(tookMs / 1000).toFixed(2)} s (${ok}/60 answered 200)`,
          baseline: 'ideal 1.2 s (60 / 5 × 100 ms); a pool per instance would take 0.4 s',
          target: '≤ 1.6 s, all 200',
          met: tookMs <= 1600 && ok === 60,
        }),
      ];
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
      await deleteKeys(prefix);
    }
  });
}

/**
 * killReclaim: instance A holds every courier (orders whose courier takes a minute), then is
 * killed with SIGKILL; how long until instance B serves an order that needs a courier.
 */
async function killReclaim(): Promise<Row[]> {
  const leaseMs = 2000;
  return withDatabase(async (databaseUrl) => {
    const prefix = `bench-kill-${process.pid}`;
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      COURIER_POOL_SIZE: '5',
      COURIER_LEASE_MS: String(leaseMs),
      REQUEST_TIMEOUT_MS: '60000',
    };
    const [holder, other] = await Promise.all([startServer(env), startServer(env)]);
    const reader = new Redis(redisUrl);
    try {
      const held = Array.from({ length: 5 }, (_, i) =>
        postOrder(holder, `held-${i}`, 60_000).catch(() => 0),
      );
      while ((await reader.zcard(`${prefix}:holders`)) < 5) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      process.kill(holder.pid, 'SIGKILL');
      const killedAt = performance.now();
      const status = await postOrder(other, 'after-kill', 1);
      const tookMs = performance.now() - killedAt;
      await Promise.all(held);
      return [
        row({
          section: 'scale-out',
          scenario: `kill -9 of an instance holding every courier (lease ${leaseMs} ms)`,
          value: tookMs,
          unit: 'ms',
          figure: `another instance served in ${Math.round(tookMs)} ms (status ${status})`,
          baseline: `lease ${leaseMs} ms`,
          target: 'within the lease + 1 s',
          met: status === 200 && tookMs <= leaseMs + 1000,
        }),
      ];
    } finally {
      reader.disconnect();
      await Promise.all([holder, other].map((server) => server.stop()));
      await deleteKeys(prefix);
    }
  });
}

async function workers(seconds: number): Promise<Row[]> {
  return withDatabase(async (databaseUrl) => {
    const prefix = `bench-workers-${process.pid}`;
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      COURIER_POOL_SIZE: '128',
    };
    const measure = async (count: number): Promise<number> => {
      // Not pinned: the workers are to use both cores.
      const server = await startServer({ ...env, WORKERS: String(count) }, { pin: false });
      try {
        return (await measured(`${server.url}/order`, 64, seconds, 2)).ordersPerSecond;
      } finally {
        await server.stop();
      }
    };
    const one = await measure(1);
    const two = await measure(2);
    return [
      row({
        section: 'scale-out',
        scenario: 'WORKERS=2 with PostgreSQL and Redis, pool 128, 64 connections, steps at 1 ms',
        value: two,
        unit: 'orders/s',
        figure: `${Math.round(two).toLocaleString('en-US')} orders/s (${(two / one).toFixed(2)}×)`,
        baseline: `WORKERS=1 ${Math.round(one).toLocaleString('en-US')} orders/s, same stores`,
        target: '≥ 1.3× one worker',
        met: two >= 1.3 * one,
      }),
    ];
  });
}

export async function scaleOutBenchmarks(options: { quick: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  rows.push(...(await uncontended(options.quick ? 500 : 5000)));
  rows.push(...(await wakeUp(options.quick ? 100 : 1000)));
  rows.push(...(await threeInstances()));
  rows.push(...(await killReclaim()));
  rows.push(...(await workers(options.quick ? 2 : 10)));
  return rows;
}
