import { afterEach, describe, expect, it } from 'vitest';
import { deleteKeys, redisAvailable, redisUrl, testPrefix } from '../pool/redis.js';
import { createThrowawayDatabase, postgresAvailable } from '../store/postgres-database.js';
import { runLoad } from './load.js';
import { killServers, spawnServer, type ServerProcess } from './server-process.js';

// WORKERS=2 as the README's "Scaling out" runs it: what an operator reads on /metrics and
// /dashboard/state is every worker's, whichever worker took the connection.

const ready = (await postgresAvailable()) && (await redisAvailable());
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await killServers();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** withPassword is `url` with a password, its own if it has one: the log must not show it. */
function withPassword(url: string): { url: string; password: string } {
  const parsed = new URL(url);
  if (parsed.password === '') parsed.password = 'never-logged-7f3a';
  return { url: parsed.toString(), password: parsed.password };
}

interface Workers {
  server: ServerProcess;
  port: number;
  prefix: string;
  databaseName: string;
  secrets: string[];
}

/** startWorkers starts WORKERS=2 on a fresh database and key prefix, once both listen. */
async function startWorkers(): Promise<Workers> {
  const database = await createThrowawayDatabase();
  const prefix = testPrefix();
  cleanups.push(async () => {
    await database.drop();
    await deleteKeys(prefix);
  });
  const postgres = withPassword(database.url);
  const redis = withPassword(redisUrl);
  const server = spawnServer({
    WORKERS: '2',
    DATABASE_URL: postgres.url,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: prefix,
  });
  const port = await server.listening();
  // Both workers listen before the clients connect, so the connections spread over both.
  await server.waitForOutput(/Server listening[\s\S]*Server listening/);
  const databaseName = new URL(database.url).pathname;
  return { server, port, prefix, databaseName, secrets: [postgres.password, redis.password] };
}

const quickOrder = (id: string) => ({
  order_id: id,
  amount: 1,
  delay_ms: { payment: 1, vendor: 1, courier: 1 },
});

/** sample is the value of the series `series` in the metrics `text`, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** logLines are the JSON lines of `output` whose message is `msg`. */
/**
 * waitUntil resolves once `condition()` holds, asking again after each answer; it rejects with
 * `what` after 10 s. For what the primary learns over IPC and exposes no promise of.
 */
async function waitUntil(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!(await condition().catch(() => false))) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
  }
}

function logLines(output: string, msg: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes(`"msg":"${msg}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe.skipIf(!ready)('WORKERS=2: one view of every worker', () => {
  it('after N orders over separate connections, one /metrics scrape and one /dashboard/state count N', async () => {
    const { server, port } = await startWorkers();
    const n = 12;
    const sent = await runLoad({
      port,
      clients: n,
      perClient: 1,
      body: (i) => quickOrder(`view-${i}`),
    });
    expect(sent.map((s) => s.status)).toStrictEqual(Array<number>(n).fill(200));
    const servedBy = new Set(
      logLines(server.output(), 'request completed')
        .filter((line) => line['url'] === '/order')
        .map((line) => line['pid']),
    );
    expect(servedBy.size, 'both workers served orders').toBe(2);

    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(sample(metrics, 'order_pipeline_orders_total{outcome="ok",kind="none"}')).toBe(n);
    expect(sample(metrics, 'order_pipeline_order_duration_seconds_count{outcome="ok"}')).toBe(n);
    expect(sample(metrics, 'order_pipeline_workers{state="answered"}')).toBe(2);
    expect(sample(metrics, 'order_pipeline_workers{state="missing"}')).toBe(0);
    // The one shared pool, not one per worker.
    expect(sample(metrics, 'order_pipeline_courier_pool_slots')).toBe(5);

    const response = await fetch(`http://127.0.0.1:${port}/dashboard/state`);
    expect(response.status).toBe(200);
    const state = (await response.json()) as {
      orders_total: number;
      by_kind: Record<string, number>;
      pool: { size: number };
      timeline: { order_id: string }[];
    };
    expect(state.orders_total).toBe(n);
    expect(state.by_kind).toStrictEqual({ ok: n });
    expect(state.pool.size).toBe(5);
    expect(state.timeline.map((row) => row.order_id).sort()).toStrictEqual(
      sent.map((s) => String(s.body['order_id'])).sort(),
    );
  }, 60_000);

  it('names the shared store and courier pool in the start-up log, without credentials', async () => {
    const { server, prefix, databaseName, secrets } = await startWorkers();
    const lines = logLines(server.output(), 'order store ready');
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).toMatchObject({
        store: 'postgres',
        database: `127.0.0.1:5432${databaseName}`,
        courier_pool: 'redis',
        redis: '127.0.0.1:6379',
        redis_key_prefix: prefix,
        courier_pool_size: 5,
        workers: 2,
      });
    }
    for (const secret of secrets) expect(server.output()).not.toContain(secret);
  }, 60_000);

  it('a worker that stops answering is left out after 1 s, and said missing, instead of hanging the scrape', async () => {
    const { server, port } = await startWorkers();
    const workerPids = logLines(server.output(), 'order store ready').map((line) =>
      Number(line['pid']),
    );
    const [stopped = 0] = workerPids;
    // Both workers must be known to the primary as serving before one stops: a worker that
    // has not yet told the primary it listens is neither asked nor counted missing.
    await waitUntil(async () => {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
      return sample(text, 'order_pipeline_workers{state="answered"}') === 2;
    }, 'both workers answer a scrape');
    process.kill(stopped, 'SIGSTOP');
    try {
      // A connection given to the stopped worker waits for it; the other worker answers.
      let answered: { text: string; ms: number } | undefined;
      for (let attempt = 0; attempt < 6 && answered === undefined; attempt++) {
        const startedAt = performance.now();
        const text = await fetch(`http://127.0.0.1:${port}/metrics`, {
          signal: AbortSignal.timeout(4000),
        })
          .then((r) => r.text())
          .catch(() => undefined);
        if (text !== undefined) answered = { text, ms: performance.now() - startedAt };
      }
      if (answered === undefined) throw new Error('no worker answered /metrics');
      expect(sample(answered.text, 'order_pipeline_workers{state="answered"}')).toBe(1);
      expect(sample(answered.text, 'order_pipeline_workers{state="missing"}')).toBe(1);
      // The primary waits 1 s for a part; the rest is the machine's own slowness.
      expect(answered.ms).toBeGreaterThanOrEqual(1000);
      expect(answered.ms).toBeLessThan(3000);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
  }, 60_000);
});
