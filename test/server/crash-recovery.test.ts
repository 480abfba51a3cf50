import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { promisedMs, recoveredTimes } from '../../bench/kill-recovery.js';
import { defaultConfig } from '../../src/config.js';
import { createThrowawayDatabase, postgresAvailable } from '../store/postgres-database.js';
import { eventually, getOrder, postJson, runLoad, type Sent } from './load.js';
import { killServers, spawnServer } from './server-process.js';

const postgresUp = await postgresAvailable();

afterEach(killServers);

/** Final outcomes are replayed to a repeated key; retryable ones would run anew. */
const finalStatuses = new Set([200, 400, 503]);

/**
 * orderBody makes a mix of outcomes: most succeed, some are declined (400), some find the
 * vendor unavailable (503); steps take a few milliseconds, the courier up to 30.
 */
function orderBody(run: string, index: number): Record<string, unknown> {
  const failStep = index % 5 === 0 ? 'payment' : index % 7 === 0 ? 'vendor' : undefined;
  return {
    order_id: `${run}-${index}`,
    amount: 1 + index,
    ...(failStep === undefined ? {} : { fail_step: failStep }),
    delay_ms: { payment: 2 + (index % 3), vendor: 3, courier: 5 + (index % 25) },
  };
}

/**
 * crashUnderLoad runs the scenario against the real server with `env`: keyed orders from 16
 * clients; once 300 are answered the server is killed with SIGKILL while the others are in
 * flight; a new server starts on the same store. Then every answer the clients got replays
 * identically, and every order sent — answered or not — ends finished, none left running,
 * the interrupted ones failed `interrupted` and compensated, GET and the record agreeing, and
 * each recorded within lease + sweep + 1 s of the kill (the new server's log tells when).
 */
async function crashUnderLoad(env: Record<string, string>): Promise<void> {
  const first = spawnServer(env);
  const port = await first.listening();
  const run = `crash-${Date.now()}`;
  let answered = 0;
  let killed = false;
  let killedAt = 0;
  const sent: Sent[] = await runLoad({
    port,
    clients: 16,
    perClient: 60,
    body: (i) => orderBody(run, i),
    key: (i) => `${run}-key-${i}`,
    onResult: (result) => {
      if (result.status !== undefined) answered++;
      if (answered >= 300 && !killed) {
        killed = true;
        killedAt = Date.now();
        first.child.kill('SIGKILL');
      }
    },
  });
  await first.exited;
  expect(killed).toBe(true);
  const acknowledged = sent.filter((s) => s.status !== undefined);
  const unanswered = sent.filter((s) => s.status === undefined);
  expect(acknowledged.length).toBeGreaterThanOrEqual(300);
  // Some orders were in flight when the process died.
  expect(unanswered.length).toBeGreaterThan(0);

  const second = spawnServer(env);
  const port2 = await second.listening();

  // Every acknowledged final answer replays identically, status and body.
  for (const ack of acknowledged) {
    expect(ack.status === undefined ? 0 : finalStatuses.has(ack.status)).toBe(true);
    const replay = await postJson(port2, ack.body, { 'idempotency-key': ack.key ?? '' });
    expect(replay.status, `replay of ${String(ack.body['order_id'])}`).toBe(ack.status);
    expect(replay.text).toBe(ack.text);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
  }

  // Every order sent is finished once recovered; none stays running.
  let interrupted = 0;
  for (const lost of unanswered) {
    const orderId = String(lost.body['order_id']);
    const recorded = await eventually(async () => {
      const order = await getOrder(port2, orderId);
      if (order === undefined) return null; // never reached the store: nothing to recover
      const settled = order.steps.every(
        (s) => s.compensation !== 'pending' && s.compensation !== 'compensation_failed',
      );
      return order.state === 'finished' && settled ? order : undefined;
    });
    if (recorded === null || recorded.error?.kind !== 'interrupted') continue;
    interrupted++;
    // GET says what the record says: each step interrupted, and undone.
    expect(recorded.steps.map((s) => [s.status, s.compensation])).toStrictEqual([
      ['interrupted', 'compensated'],
      ['interrupted', 'compensated'],
      ['interrupted', 'compensated'],
    ]);
  }
  // The kill caught orders between their start and their outcome.
  expect(interrupted).toBeGreaterThan(0);
  // Each was recorded in time.
  const recordedAt = recoveredTimes(second.output(), run);
  expect(recordedAt).toHaveLength(interrupted);
  const leaseMs = Number(env['ORDER_LEASE_MS'] ?? defaultConfig.orderLeaseMs);
  expect(Math.max(...recordedAt) - killedAt).toBeLessThanOrEqual(promisedMs(leaseMs));
}

describe('a real server killed with SIGKILL under load', () => {
  it('embedded store (the default): acknowledged orders replay, none stays running', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'order-recovery-'));
    try {
      await crashUnderLoad({ DATA_DIR: dataDir });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  it.skipIf(!postgresUp)(
    'PostgreSQL store: the dead instance\u2019s orders are recovered once its lease expires',
    async () => {
      const database = await createThrowawayDatabase();
      try {
        await crashUnderLoad({ DATABASE_URL: database.url, ORDER_LEASE_MS: '1000' });
      } finally {
        await database.drop();
      }
    },
    90_000,
  );
});
