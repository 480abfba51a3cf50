import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killServers, spawnServer } from '../server-process.js';
import { createThrowawayDatabase, postgresAvailable } from '../store/postgres-database.js';

const postgresUp = await postgresAvailable();

afterAll(killServers);

/** startServer spawns the real server and resolves once it listens, with its port. */
async function startServer(env: Record<string, string>) {
  const server = spawnServer({ REQUEST_TIMEOUT_MS: '30000', ...env });
  return { child: server.child, port: await server.listening(), exited: server.exited };
}

async function getOrder(port: number, id: string): Promise<RecordedOrder | undefined> {
  const response = await fetch(`http://127.0.0.1:${port}/order/${id}`);
  return response.status === 404 ? undefined : ((await response.json()) as RecordedOrder);
}

interface RecordedOrder {
  state: string;
  status: string;
  error?: { kind: string };
  steps: { name: string; status: string; compensation: string }[];
}

/** waitFor polls `check` until it returns a value, for at most `ms`. */
async function waitFor<T>(check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const until = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The scenario for one store: one order finished before the crash, three in flight (payment
 * and vendor done, courier slow) when the server is killed with SIGKILL. After a restart the
 * finished one is intact and every interrupted one is failed `interrupted` with every step
 * that did or may have run compensated.
 */
async function crashAndRecover(env: Record<string, string>): Promise<void> {
  const first = await startServer(env);
  const post = (port: number, body: object) =>
    fetch(`http://127.0.0.1:${port}/order`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const done = await post(first.port, { order_id: 'before-crash', amount: 1 });
  expect(done.status).toBe(200);

  const inFlight = ['crash-1', 'crash-2', 'crash-3'];
  const requests = inFlight.map((id) =>
    post(first.port, {
      order_id: id,
      amount: 5,
      delay_ms: { payment: 5, vendor: 5, courier: 60_000 },
    }).catch(() => undefined),
  );
  for (const id of inFlight) {
    await waitFor(async () => {
      const order = await getOrder(first.port, id);
      const payment = order?.steps.find((s) => s.name === 'payment');
      const vendor = order?.steps.find((s) => s.name === 'vendor');
      return payment?.status === 'ok' && vendor?.status === 'ok' ? order : undefined;
    });
  }
  first.child.kill('SIGKILL');
  await first.exited;
  await Promise.all(requests);

  const second = await startServer(env);
  try {
    const before = await getOrder(second.port, 'before-crash');
    expect(before).toMatchObject({ state: 'finished', status: 'ok' });
    for (const id of inFlight) {
      const order = await waitFor(async () => {
        const recorded = await getOrder(second.port, id);
        const settled = recorded?.steps.every(
          (s) => s.compensation === 'compensated' || s.compensation === 'not_needed',
        );
        return recorded?.state === 'finished' && settled === true ? recorded : undefined;
      });
      expect(order.error?.kind).toBe('interrupted');
      expect(order.steps.map((s) => [s.name, s.status, s.compensation])).toStrictEqual([
        ['payment', 'ok', 'compensated'],
        ['vendor', 'ok', 'compensated'],
        ['courier', 'running', 'compensated'],
      ]);
    }
  } finally {
    second.child.kill('SIGTERM');
    await second.exited;
  }
}

describe('crash recovery of a real server killed with SIGKILL', () => {
  it('embedded PGlite store: finished orders survive, interrupted ones are compensated', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'order-recovery-'));
    try {
      await crashAndRecover({
        ORDER_STORE: 'pglite',
        DATA_DIR: dataDir,
        REQUEST_TIMEOUT_MS: '2500',
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it.skipIf(!postgresUp)(
    'PostgreSQL store: orders of the dead instance are recovered once its lease expires',
    async () => {
      const database = await createThrowawayDatabase();
      try {
        await crashAndRecover({
          ORDER_STORE: 'postgres',
          DATABASE_URL: database.url,
          ORDER_LEASE_MS: '1000',
          REQUEST_TIMEOUT_MS: '2500',
        });
      } finally {
        await database.drop();
      }
    },
    60_000,
  );
});
