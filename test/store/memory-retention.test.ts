import { describe, expect, it } from 'vitest';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import type { BeginInput, CompensationUpdate } from '../../src/store/order-store.js';

const begin = (orderId: string, now = 1_000): BeginInput => ({
  orderId,
  requestHash: 'hash',
  request: { order_id: orderId, amount: 1, delay_ms: { payment: 5 } },
  stepNames: ['payment', 'vendor'],
  owner: 'me',
  now,
  leaseUntil: now + 10_000,
});

async function finished(
  store: MemoryOrderStore,
  orderId: string,
  compensations: CompensationUpdate[] = [],
): Promise<void> {
  await store.begin(begin(orderId));
  const done = await store.finish({
    orderId,
    owner: 'me',
    outcome: { status: 'ok' },
    steps: [],
    compensations,
    now: 2_000,
  });
  expect(done).toBe(true);
}

const kept = async (store: MemoryOrderStore, ids: string[]): Promise<string[]> => {
  const found = await Promise.all(ids.map((id) => store.get(id)));
  return ids.filter((_, i) => found[i] !== undefined);
};

describe('MemoryOrderStore retention', () => {
  it('forgets the oldest settled finished orders beyond the cap', async () => {
    const store = new MemoryOrderStore({ maxFinishedOrders: 3 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) await finished(store, id);
    expect(await kept(store, ['a', 'b', 'c', 'd', 'e'])).toEqual(['c', 'd', 'e']);
    expect(store.size).toBe(3);
    // A forgotten id is new again: its idempotency is gone with it.
    expect((await store.begin(begin('a'))).created).toBe(true);
  });

  it('never forgets running orders or orders with an open compensation', async () => {
    const store = new MemoryOrderStore({ maxFinishedOrders: 1 });
    await store.begin(begin('running'));
    await finished(store, 'pending', [
      { name: 'payment', compensation: 'pending', attempts: 0, nextAttemptAt: 5_000 },
    ]);
    await finished(store, 'flagged', [
      { name: 'payment', compensation: 'compensation_failed', attempts: 8, needsOperator: true },
    ]);
    for (const id of ['x', 'y', 'z']) await finished(store, id);
    expect(await kept(store, ['running', 'pending', 'flagged', 'x', 'y', 'z'])).toEqual([
      'running',
      'pending',
      'flagged',
      'z',
    ]);
  });

  it('counts an order as settled from when its last compensation succeeds', async () => {
    const store = new MemoryOrderStore({ maxFinishedOrders: 2 });
    await finished(store, 'slow', [
      { name: 'payment', compensation: 'compensation_failed', attempts: 1, nextAttemptAt: 1 },
    ]);
    await finished(store, 'a');
    const due = await store.claimDueCompensations(3_000, 9_000, 10);
    expect(due.map((item) => [item.orderId, item.name])).toEqual([['slow', 'payment']]);
    await store.recordCompensation(
      'slow',
      { name: 'payment', compensation: 'compensated', attempts: 2 },
      3_000,
    );
    expect(await store.claimDueCompensations(10_000, 19_000, 10)).toEqual([]);
    await finished(store, 'b');
    expect(await kept(store, ['slow', 'a', 'b'])).toEqual(['slow', 'b']);
  });

  it('a restarted order is running again and is not forgotten', async () => {
    const store = new MemoryOrderStore({ maxFinishedOrders: 1 });
    await finished(store, 'again');
    expect(await store.restart({ ...begin('again'), owner: 'other' })).toMatchObject({
      state: 'running',
      attempt: 2,
    });
    await finished(store, 'x');
    await finished(store, 'y');
    expect(await kept(store, ['again', 'x', 'y'])).toEqual(['again', 'y']);
    expect(
      (await store.claimOrphans('third', 1, 2, { anyOwner: true })).map((o) => o.orderId),
    ).toEqual(['again']);
  });

  it('an order settled again after a restart counts as settled from its second finish', async () => {
    const store = new MemoryOrderStore({ maxFinishedOrders: 2 });
    await finished(store, 'again');
    await finished(store, 'a');
    await store.restart(begin('again'));
    await store.finish({
      orderId: 'again',
      owner: 'me',
      outcome: { status: 'ok' },
      steps: [],
      compensations: [],
      now: 3_000,
    });
    await finished(store, 'b');
    expect(await kept(store, ['again', 'a', 'b'])).toEqual(['again', 'b']);
    await finished(store, 'c');
    await finished(store, 'd');
    expect(await kept(store, ['again', 'a', 'b', 'c', 'd'])).toEqual(['c', 'd']);
    expect(store.size).toBe(2);
  });

  it('rejects a cap that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => new MemoryOrderStore({ maxFinishedOrders: bad }), String(bad)).toThrow(
        RangeError,
      );
    }
    expect(new MemoryOrderStore({ maxFinishedOrders: Infinity }).size).toBe(0);
  });
});

describe('MemoryOrderStore copies', () => {
  it('what a caller passes in or gets back does not alias the record', async () => {
    const store = new MemoryOrderStore();
    const input = begin('copies');
    const created = await store.begin(input);
    (input.request as { amount: number }).amount = 99;
    const outcome = { status: 'ok', steps: [{ name: 'payment' }] };
    await store.finish({
      orderId: 'copies',
      owner: 'me',
      outcome,
      steps: [{ name: 'payment', status: 'ok', durationMs: 1 }],
      compensations: [],
      now: 2_000,
    });
    outcome.status = 'changed';
    const read = await store.get('copies');
    expect(read?.request).toEqual({ order_id: 'copies', amount: 1, delay_ms: { payment: 5 } });
    expect(read?.outcome).toEqual({ status: 'ok', steps: [{ name: 'payment' }] });
    (read?.steps[0] as { status: string }).status = 'changed';
    (read?.outcome as { status: string }).status = 'changed';
    const again = await store.get('copies');
    expect(again?.steps[0]?.status).toBe('ok');
    expect(again?.outcome).toEqual({ status: 'ok', steps: [{ name: 'payment' }] });
    expect(created.order.steps[0]?.status).toBe('running');
  });
});
