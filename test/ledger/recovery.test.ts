import { afterEach, describe, expect, it, vi } from 'vitest';
import { OrderLedger } from '../../src/ledger/order-ledger.js';
import type { Order } from '../../src/order/order.js';
import { Pipeline } from '../../src/order/pipeline.js';
import type { Step } from '../../src/order/step.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { deferred, flushMicrotasks, type Deferred } from '../helpers.js';

// Recovering many orphans at once: a store write per batch, every orphan recorded before
// their compensations end, those compensations bounded and never attempted past their claim.

/** The ledger's clock, in epoch milliseconds; tests move it. */
let now = 1_000_000;
const compensationTimeoutMs = 2_000;
const opened: OrderLedger[] = [];

afterEach(async () => {
  for (const ledger of opened.splice(0)) await ledger.close();
  now = 1_000_000;
});

/** What a test reads of the compensations and how it lets them end. */
interface Compensations {
  /** The compensations wait for it. */
  readonly gate: Deferred<void>;
  /** How many run now, and the most that ever ran at once. */
  active: number;
  most: number;
  /** The orders undone, in the order they were. */
  readonly undone: string[];
}

/** recovering builds a ledger over `store` whose one step compensates behind a gate. */
function recovering(store: MemoryOrderStore): { ledger: OrderLedger } & Compensations {
  const compensations: Compensations = { gate: deferred(), active: 0, most: 0, undone: [] };
  const steps: Step<Order>[] = [
    {
      name: 'payment',
      run: () => Promise.resolve(),
      compensate: async (order: Order) => {
        compensations.active++;
        compensations.most = Math.max(compensations.most, compensations.active);
        try {
          await compensations.gate.promise;
        } finally {
          compensations.active--;
        }
        compensations.undone.push(order.id);
      },
    },
  ];
  const ledger = new OrderLedger({
    store,
    pipeline: new Pipeline(steps),
    steps,
    leaseMs: 15_000,
    compensationTimeoutMs,
    compensationMaxAttempts: 3,
    compensationRetryBaseMs: 10,
    compensationRetryMaxMs: 1_000,
    now: () => now,
  });
  opened.push(ledger);
  return Object.assign(compensations, { ledger });
}

/** orphans records `count` runs left running by a dead instance, their leases expired. */
async function orphans(store: MemoryOrderStore, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `orphan-${i}`);
  for (const id of ids) {
    await store.begin({
      runId: `run-${id}`,
      orderId: id,
      order: { id, amount: 1 },
      owner: 'dead-instance',
      leaseUntil: now - 1,
      now: now - 15_000,
    });
  }
  return ids;
}

const compensationOf = async (store: MemoryOrderStore, id: string): Promise<string | undefined> =>
  (await store.get(id))?.compensations[0]?.status;

describe('recovery of many orphans', () => {
  it('records 1,200 orphans in three store writes of at most 500', async () => {
    const store = new MemoryOrderStore();
    await orphans(store, 1_200);
    // Each write as [limit, runs taken].
    const writes: number[][] = [];
    const recoverOrphans = store.recoverOrphans.bind(store);
    vi.spyOn(store, 'recoverOrphans').mockImplementation(async (input) => {
      const runs = await recoverOrphans(input);
      writes.push([input.limit, runs.length]);
      return runs;
    });
    const h = recovering(store);
    h.gate.resolve();
    await h.ledger.start();
    expect(writes).toEqual([
      [500, 500],
      [500, 500],
      [500, 200],
    ]);
  });

  it('records every orphan interrupted before their compensations end, and runs at most 32 of them at once', async () => {
    const store = new MemoryOrderStore();
    const ids = await orphans(store, 200);
    const h = recovering(store);
    await h.ledger.start();
    const states = await Promise.all(ids.map(async (id) => (await store.get(id))?.outcome?.error));
    expect(
      states.filter((error) => error?.kind !== 'interrupted'),
      'recorded',
    ).toEqual([]);
    await flushMicrotasks();
    expect([h.active, h.most], 'compensating while the gate is shut').toEqual([32, 32]);

    h.gate.resolve();
    await h.ledger.idle();
    expect(h.most, 'the most at once').toBe(32);
    expect(h.undone.sort(), 'each undone once').toEqual([...ids].sort());
    const statuses = await Promise.all(ids.map((id) => compensationOf(store, id)));
    expect(new Set(statuses), 'recorded').toEqual(new Set(['compensated']));
  });

  it('leaves a run whose claim ran out while it waited for a slot to the sweep of due compensations', async () => {
    const store = new MemoryOrderStore();
    const ids = await orphans(store, 33);
    const h = recovering(store);
    await h.ledger.start();
    await flushMicrotasks();
    expect(h.active).toBe(32);

    // An attempt started now could outlast the claim: another sweep may claim it first.
    now += compensationTimeoutMs + 1;
    h.gate.resolve();
    await h.ledger.idle();
    expect(h.undone, 'attempted').toHaveLength(32);
    const waited = ids.find((id) => !h.undone.includes(id)) ?? '';
    expect(await compensationOf(store, waited), 'still due').toBe('pending');

    now += compensationTimeoutMs; // the claim window, twice the deadline, has run out
    await h.ledger.sweep();
    expect([h.undone.length, h.undone.at(-1)], 'then undone by the sweep').toEqual([33, waited]);
    expect(new Set(h.undone).size, 'each once').toBe(33);
    expect(await compensationOf(store, waited)).toBe('compensated');
  });
});
