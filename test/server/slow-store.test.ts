import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { createThrowawayDatabase, postgresAvailable } from '../store/postgres-database.js';
import { eventually, postJson, runLoad } from './load.js';
import { killServers, spawnServer } from './server-process.js';

const postgresUp = await postgresAvailable();

afterEach(killServers);

const deadlineMs = 500;
/**
 * The promise of the service: no answer later than the deadline plus 50 ms, from the moment
 * the request arrived until its answer was sent, as the server's own log line times it. The
 * clients on this same busy machine see it up to a scheduling delay later.
 */
const latestAnswerMs = deadlineMs + 50;
const clientSlackMs = 100;

/** How many answers refused (503) or timed out (504) the clients see before the store is let go. */
const stalledAnswers = 64;

/**
 * underStalledStore runs 32 clients against the server while `stall` holds the store's
 * write lock from another connection, until the clients have seen {@link stalledAnswers}
 * orders refused or timed out: the store cannot commit anything, so it is the bottleneck.
 * Every answer must come within the deadline + 50 ms, and none may be a 200 that arrives
 * late: orders are refused (503) or time out (504) until the store is back, and succeed
 * again afterwards.
 */
async function underStalledStore(
  env: Record<string, string>,
  stall: () => Promise<() => Promise<void>>,
): Promise<void> {
  const server = spawnServer({ REQUEST_TIMEOUT_MS: String(deadlineMs), ...env });
  const port = await server.listening();
  const body = (i: number) => ({
    order_id: `stall-${i}`,
    amount: 1,
    delay_ms: { payment: 2, vendor: 2, courier: 2 },
  });
  // Warm: the store answers.
  const warm = await runLoad({ port, clients: 4, perClient: 10, body });
  expect(warm.every((s) => s.status === 200)).toBe(true);

  const release = await stall();
  let releasing: Promise<void> | undefined;
  let cutShort = 0;
  const sent = await runLoad({
    port,
    clients: 32,
    perClient: 40,
    body: (i) => body(1000 + i),
    onResult: (result) => {
      if (result.status === 503 || result.status === 504) cutShort++;
      if (releasing === undefined && cutShort >= stalledAnswers) releasing = release();
    },
  });
  // Had the stall never shown, the load ended with the store still held: let it go now.
  const stallShown = releasing !== undefined;
  await (releasing ?? release());

  const statuses = new Map<number | undefined, number>();
  for (const s of sent) statuses.set(s.status, (statuses.get(s.status) ?? 0) + 1);
  const slowest = Math.max(...sent.map((s) => s.ms));
  expect(
    sent.every((s) => s.status !== undefined),
    JSON.stringify([...statuses]),
  ).toBe(true);
  expect(slowest, `slowest answer seen by a client`).toBeLessThanOrEqual(
    latestAnswerMs + clientSlackMs,
  );
  const serverTimes = (): number[] =>
    [...server.output().matchAll(/"response_time_ms":([\d.]+)/g)].map((m) => Number(m[1]));
  // Refusals for overload are counted in a summary line per second, not a line each: every
  // request is in the log once the last window has closed.
  const refusedInSummaries = (): number =>
    [...server.output().matchAll(/"refused":(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  await eventually(() =>
    Promise.resolve(serverTimes().length + refusedInSummaries() >= sent.length ? true : undefined),
  );
  expect(Math.max(...serverTimes()), 'slowest answer on the server').toBeLessThanOrEqual(
    latestAnswerMs,
  );
  // While the store was stalled, orders were refused or timed out: no late success.
  expect(stallShown, `${stalledAnswers} refusals or timeouts during the stall`).toBe(true);
  for (const s of sent) {
    if (s.status === 200) expect(s.ms).toBeLessThanOrEqual(deadlineMs + clientSlackMs);
  }
  // Once the store is back — the next retry of its commit, within 10 ms — orders succeed.
  let probe = 9000;
  await eventually(async () =>
    (await postJson(port, body(probe++))).status === 200 ? true : undefined,
  );
  const after = await runLoad({ port, clients: 4, perClient: 10, body: (i) => body(9100 + i) });
  expect(after.map((s) => s.status)).toStrictEqual(Array<number>(40).fill(200));
}

describe('a store that cannot keep up', () => {
  it('embedded store: every answer within the deadline + 50 ms, no late 200', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'order-stall-'));
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    await underStalledStore({ DATA_DIR: dataDir }, () => {
      // Another process's transaction holds the database's write lock.
      const db = new Database(join(dataDir, 'orders.sqlite'));
      db.exec('BEGIN IMMEDIATE');
      return Promise.resolve(() => {
        db.exec('COMMIT');
        db.close();
        return Promise.resolve();
      });
    });
  }, 60_000);

  it.skipIf(!postgresUp)(
    'PostgreSQL: every answer within the deadline + 50 ms, no late 200',
    async () => {
      const database = await createThrowawayDatabase();
      try {
        await underStalledStore({ DATABASE_URL: database.url }, async () => {
          const client = new pg.Client({ connectionString: database.url });
          await client.connect();
          await client.query('BEGIN');
          await client.query('LOCK TABLE order_runs IN ACCESS EXCLUSIVE MODE');
          return async () => {
            await client.query('COMMIT');
            await client.end();
          };
        });
      } finally {
        await database.drop();
      }
    },
    60_000,
  );
});
