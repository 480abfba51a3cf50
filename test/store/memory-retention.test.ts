import { describe, expect, it } from 'vitest';
import { retryableKinds } from '../../src/ledger/order-ledger.js';
import type { Compensation, NewRun, RecordedOutcome } from '../../src/ledger/order-store.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';

const run = (id: string, now = 1_000): NewRun & { idempotencyKey: string } => ({
  runId: `run-${id}-${now}`,
  orderId: id,
  idempotencyKey: `key-${id}`,
  fingerprint: 'print',
  order: { id, amount: 1 },
  owner: 'me',
  leaseUntil: now + 10_000,
  now,
});

const ok: RecordedOutcome = {
  status: 'ok',
  steps: [{ name: 'payment', status: 'ok', durationMs: 1 }],
};
const timedOut: RecordedOutcome = {
  status: 'error',
  steps: [{ name: 'payment', status: 'canceled', durationMs: 1 }],
  error: { kind: 'timeout', message: 'late' },
};

async function finished(
  store: MemoryOrderStore,
  id: string,
  compensations: Compensation[] = [],
  now = 1_000,
  outcome: RecordedOutcome = ok,
): Promise<void> {
  const started = run(id, now);
  await store.begin(started);
  const done = await store.finish({
    runId: started.runId,
    owner: 'me',
    outcome,
    compensations,
    now: now + 1_000,
  });
  expect(done).toBe(true);
}

const kept = async (store: MemoryOrderStore, ids: string[]): Promise<string[]> => {
  const found = await Promise.all(ids.map((id) => store.get(id)));
  return ids.filter((_, i) => found[i] !== undefined);
};

describe('MemoryOrderStore retention', () => {
  it('forgets the oldest settled runs beyond the cap, and their keys with them', async () => {
    const store = new MemoryOrderStore({ maxSettledRuns: 3 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) await finished(store, id);
    expect(await kept(store, ['a', 'b', 'c', 'd', 'e'])).toEqual(['c', 'd', 'e']);
    expect(store.size).toBe(3);
    // A forgotten key is new again: its idempotency is gone with it.
    expect((await store.begin(run('a', 5_000))).created).toBe(true);
  });

  it('never forgets running runs or runs with an open or flagged compensation', async () => {
    const store = new MemoryOrderStore({ maxSettledRuns: 1 });
    await store.begin(run('running'));
    await finished(store, 'pending', [
      {
        name: 'payment',
        status: 'pending',
        attempts: 0,
        nextAttemptAt: 5_000,
        needsOperator: false,
      },
    ]);
    await finished(store, 'flagged', [
      { name: 'payment', status: 'compensation_failed', attempts: 8, needsOperator: true },
    ]);
    for (const id of ['x', 'y', 'z']) await finished(store, id);
    expect(await kept(store, ['running', 'pending', 'flagged', 'x', 'y', 'z'])).toEqual([
      'running',
      'pending',
      'flagged',
      'z',
    ]);
  });

  it('counts a run as settled from when its last compensation succeeds', async () => {
    const store = new MemoryOrderStore({ maxSettledRuns: 2 });
    await finished(store, 'slow', [
      {
        name: 'payment',
        status: 'compensation_failed',
        attempts: 1,
        nextAttemptAt: 1,
        needsOperator: false,
      },
    ]);
    await finished(store, 'a');
    const due = await store.claimDueCompensations(3_000, 9_000, 10);
    expect(due.map((item) => item.orderId)).toEqual(['slow']);
    await store.recordCompensations(
      'run-slow-1000',
      [{ name: 'payment', status: 'compensated', attempts: 2, needsOperator: false }],
      3_000,
    );
    expect(await store.claimDueCompensations(10_000, 19_000, 10)).toEqual([]);
    await finished(store, 'b');
    expect(await kept(store, ['slow', 'a', 'b'])).toEqual(['slow', 'b']);
  });

  it('a restarted key runs again, and its new run is not forgotten while running', async () => {
    const store = new MemoryOrderStore({ maxSettledRuns: 1 });
    await finished(store, 'again', [], 1_000, timedOut);
    expect(await store.restart({ ...run('again', 3_000), owner: 'other' }, retryableKinds)).toBe(
      true,
    );
    await finished(store, 'x');
    await finished(store, 'y');
    expect(await kept(store, ['again', 'x', 'y'])).toEqual(['again', 'y']);
    expect(await store.getByKey('key-again')).toMatchObject({ state: 'running', attempt: 2 });
  });

  it('rejects a cap that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => new MemoryOrderStore({ maxSettledRuns: bad }), String(bad)).toThrow(RangeError);
    }
    expect(new MemoryOrderStore({ maxSettledRuns: Infinity }).size).toBe(0);
  });
});
