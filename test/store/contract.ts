import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orderFromRecordedRequest } from '../../src/http/recorded-orders.js';
import { createOrderService } from '../../src/order/order-service.js';
import { OrderLedger } from '../../src/store/order-ledger.js';
import type { BeginInput, OrderStore } from '../../src/store/order-store.js';

/**
 * orderStoreContract is the one behavioural suite every {@link OrderStore} passes. `open`
 * is called once for the suite (stores are slow to open); each test uses its own order ids,
 * so the store may hold data from earlier tests.
 */
export function orderStoreContract(
  name: string,
  open: () => Promise<{ store: OrderStore; cleanup?: () => Promise<void> }>,
): void {
  describe(`OrderStore contract: ${name}`, () => {
    let store: OrderStore;
    let cleanup: (() => Promise<void>) | undefined;
    const run = randomUUID().slice(0, 8);
    let counter = 0;
    const newId = (): string => `contract-${run}-${++counter}`;
    const begin = (orderId: string, extra: Partial<BeginInput> = {}): BeginInput => ({
      orderId,
      requestHash: 'hash-a',
      request: { order_id: orderId, amount: 100, delay_ms: { payment: 5 } },
      stepNames: ['payment', 'vendor', 'courier'],
      owner: 'instance-a',
      now: 1_000,
      leaseUntil: 11_000,
      ...extra,
    });

    beforeAll(async () => {
      ({ store, cleanup } = await open());
    });
    afterAll(async () => {
      await store.close();
      await cleanup?.();
    });

    it('begin creates a running order with its steps in registration order', async () => {
      const id = newId();
      const result = await store.begin(begin(id));
      expect(result.created).toBe(true);
      expect(result.order).toMatchObject({
        orderId: id,
        requestHash: 'hash-a',
        request: { order_id: id, amount: 100, delay_ms: { payment: 5 } },
        state: 'running',
        attempt: 1,
        owner: 'instance-a',
        leaseUntil: 11_000,
        createdAt: 1_000,
      });
      expect(result.order.steps.map((step) => [step.name, step.status, step.compensation])).toEqual(
        [
          ['payment', 'running', 'not_needed'],
          ['vendor', 'running', 'not_needed'],
          ['courier', 'running', 'not_needed'],
        ],
      );
    });

    it('begin of an existing id returns the recorded order and changes nothing', async () => {
      const id = newId();
      await store.begin(begin(id));
      const again = await store.begin(begin(id, { requestHash: 'hash-b', owner: 'instance-b' }));
      expect(again.created).toBe(false);
      expect(again.order.requestHash).toBe('hash-a');
      expect(again.order.owner).toBe('instance-a');
    });

    it('exactly one of 50 concurrent begins with one id creates the order', async () => {
      const id = newId();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.begin(begin(id, { owner: `instance-${i}` }))),
      );
      const winners = results.filter((result) => result.created);
      expect(winners).toHaveLength(1);
      const owner = winners[0]?.order.owner;
      for (const result of results) expect(result.order.owner).toBe(owner);
    });

    it('50 concurrent duplicate submissions through two instances execute once', async () => {
      const service = createOrderService({ delays: { payment: 5, vendor: 5, courier: 5 } });
      const ledgers = ['one', 'two'].map(
        (instanceId) =>
          new OrderLedger({
            store,
            instanceId: `${run}-${instanceId}`,
            pipeline: service.pipeline,
            steps: service.steps ?? [],
            toOrder: orderFromRecordedRequest,
          }),
      );
      const id = newId();
      const body = { order_id: id, amount: 3 };
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (ledgers[i % 2] as OrderLedger).submit({ id, amount: 3 }, body),
        ),
      );
      await Promise.all(ledgers.map((ledger) => ledger.close()));
      expect(service.tracker.started).toBe(3);
      const executed = results.filter((r) => r.kind === 'outcome' && !r.replayed);
      expect(executed).toHaveLength(1);
      for (const result of results) {
        expect(['outcome', 'in_progress']).toContain(result.kind);
        if (result.kind === 'outcome') expect(result.outcome.status).toBe('ok');
      }
      expect((await store.get(id))?.state).toBe('finished');
    });

    it('get of an unknown id resolves undefined', async () => {
      expect(await store.get(newId())).toBeUndefined();
    });

    it('recordStep and finish record outcomes, only for the owner', async () => {
      const id = newId();
      await store.begin(begin(id));
      await store.recordStep(
        id,
        'instance-a',
        { name: 'payment', status: 'ok', durationMs: 5.5 },
        2_000,
      );
      await store.recordStep(id, 'intruder', { name: 'vendor', status: 'ok' }, 2_000);
      let order = await store.get(id);
      expect(order?.steps.map((step) => step.status)).toEqual(['ok', 'running', 'running']);
      expect(order?.steps[0]?.durationMs).toBe(5.5);

      const finishInput = {
        orderId: id,
        errorKind: 'no_courier',
        outcome: { status: 'error', error: { kind: 'no_courier' } },
        steps: [
          { name: 'payment', status: 'ok' as const, durationMs: 5.5 },
          { name: 'vendor', status: 'canceled' as const, durationMs: 7 },
          { name: 'courier', status: 'error' as const, detail: 'no_courier', durationMs: 6 },
        ],
        compensations: [{ name: 'payment', compensation: 'compensated' as const, attempts: 1 }],
        now: 3_000,
      };
      expect(await store.finish({ ...finishInput, owner: 'intruder' })).toBe(false);
      expect(await store.finish({ ...finishInput, owner: 'instance-a' })).toBe(true);
      expect(await store.finish({ ...finishInput, owner: 'instance-a' })).toBe(false);
      order = await store.get(id);
      expect(order).toMatchObject({
        state: 'finished',
        errorKind: 'no_courier',
        outcome: { status: 'error', error: { kind: 'no_courier' } },
        finishedAt: 3_000,
        owner: undefined,
      });
      expect(
        order?.steps.map((s) => [
          s.name,
          s.status,
          s.detail,
          s.compensation,
          s.compensationAttempts,
        ]),
      ).toEqual([
        ['payment', 'ok', undefined, 'compensated', 1],
        ['vendor', 'canceled', undefined, 'not_needed', 0],
        ['courier', 'error', 'no_courier', 'not_needed', 0],
      ]);
      // A finished order no longer accepts step updates.
      await store.recordStep(id, 'instance-a', { name: 'vendor', status: 'ok' }, 4_000);
      expect((await store.get(id))?.steps[1]?.status).toBe('canceled');
    });

    it('due compensations are claimed once, and not before they are due', async () => {
      const id = newId();
      await store.begin(begin(id));
      await store.finish({
        orderId: id,
        owner: 'instance-a',
        errorKind: 'no_courier',
        outcome: {},
        steps: [],
        compensations: [
          {
            name: 'payment',
            compensation: 'compensation_failed',
            attempts: 1,
            nextAttemptAt: 5_000,
            error: 'timeout',
          },
          { name: 'vendor', compensation: 'pending', attempts: 0, nextAttemptAt: 6_000 },
          {
            name: 'courier',
            compensation: 'compensation_failed',
            attempts: 8,
            needsOperator: true,
            nextAttemptAt: 1,
          },
        ],
        now: 3_000,
      });
      const mine = (list: { orderId: string; name: string }[]): string[] =>
        list.filter((due) => due.orderId === id).map((due) => due.name);
      expect(mine(await store.claimDueCompensations(4_999, 9_000, 100))).toEqual([]);
      const first = (await store.claimDueCompensations(5_500, 9_000, 100)).filter(
        (d) => d.orderId === id,
      );
      expect(first).toEqual([
        { orderId: id, name: 'payment', attempts: 1, request: begin(id).request },
      ]);
      // Claimed until 9000: not claimed again before then, even though vendor is now due too.
      expect(mine(await store.claimDueCompensations(6_000, 9_000, 100))).toEqual(['vendor']);
      expect(mine(await store.claimDueCompensations(8_999, 12_000, 100))).toEqual([]);
      expect(mine(await store.claimDueCompensations(9_000, 12_000, 100)).sort()).toEqual([
        'payment',
        'vendor',
      ]);
      await store.recordCompensation(
        id,
        { name: 'payment', compensation: 'compensated', attempts: 2 },
        9_500,
      );
      const order = await store.get(id);
      expect(order?.steps.map((s) => [s.compensation, s.needsOperator])).toEqual([
        ['compensated', false],
        ['pending', false],
        ['compensation_failed', true],
      ]);
    });

    it('claimOrphans takes only expired leases of others, once', async () => {
      const live = newId();
      const expired = newId();
      await store.begin(begin(live, { owner: 'other', leaseUntil: 50_000 }));
      await store.begin(begin(expired, { owner: 'dead', leaseUntil: 20_000 }));
      const claimed = (await store.claimOrphans('me', 30_000, 40_000)).map((o) => o.orderId);
      expect(claimed).toContain(expired);
      expect(claimed).not.toContain(live);
      expect((await store.get(expired))?.owner).toBe('me');
      expect((await store.claimOrphans('me', 30_000, 40_000)).map((o) => o.orderId)).not.toContain(
        expired,
      );
      // A live owner renews its lease and keeps its order.
      await store.renewLeases('other', [live, expired], 90_000, 30_000);
      expect((await store.get(expired))?.leaseUntil).toBe(40_000);
      expect(
        (await store.claimOrphans('third', 60_000, 70_000)).map((o) => o.orderId),
      ).not.toContain(live);
      const all = await store.claimOrphans('third', 60_000, 70_000, { anyOwner: true });
      expect(all.map((o) => o.orderId)).toContain(live);
    });

    it('concurrent claimOrphans never hand one order to two instances', async () => {
      const ids = [newId(), newId(), newId(), newId()];
      for (const id of ids) await store.begin(begin(id, { owner: 'dead', leaseUntil: 100 }));
      const claims = await Promise.all(
        ['x', 'y', 'z'].map((owner) => store.claimOrphans(owner, 200_000, 300_000)),
      );
      const claimedIds = claims
        .flat()
        .map((o) => o.orderId)
        .filter((id) => ids.includes(id));
      expect(claimedIds.sort()).toEqual([...ids].sort());
    });

    it('restart runs a finished order again only when its compensations are settled', async () => {
      const id = newId();
      await store.begin(begin(id));
      await store.finish({
        orderId: id,
        owner: 'instance-a',
        errorKind: 'timeout',
        outcome: {},
        steps: [{ name: 'payment', status: 'ok' }],
        compensations: [
          { name: 'payment', compensation: 'compensation_failed', attempts: 1, nextAttemptAt: 1 },
        ],
        now: 3_000,
      });
      expect(await store.restart(begin(id, { owner: 'b', now: 4_000 }))).toBeUndefined();
      await store.recordCompensation(
        id,
        { name: 'payment', compensation: 'compensated', attempts: 2 },
        4_000,
      );
      expect(await store.restart(begin(id, { owner: 'b', requestHash: 'other' }))).toBeUndefined();
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          store.restart(begin(id, { owner: `b${i}`, now: 5_000 })),
        ),
      );
      const winners = results.filter((order) => order !== undefined);
      expect(winners).toHaveLength(1);
      expect(winners[0]).toMatchObject({ state: 'running', attempt: 2, errorKind: undefined });
      expect(winners[0]?.steps.map((s) => [s.status, s.compensation])).toEqual([
        ['running', 'not_needed'],
        ['running', 'not_needed'],
        ['running', 'not_needed'],
      ]);
    });
  });
}
