import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { retryableKinds } from '../../src/ledger/order-ledger.js';
import type {
  Compensation,
  FinishInput,
  NewRun,
  OrderStore,
  RecordedOutcome,
} from '../../src/ledger/order-store.js';
import type { Order } from '../../src/order/order.js';
import type { OrderService } from '../../src/service/order-service.js';
import { testService } from '../helpers.js';

/**
 * orderStoreContract is the one behavioural suite every {@link OrderStore} passes. `open`
 * is called once for the suite (stores are slow to open); each test uses its own order ids
 * and keys, so the store may hold data from earlier tests.
 */
export function orderStoreContract(
  name: string,
  open: () => Promise<{ store: OrderStore; cleanup?: () => Promise<void> }>,
): void {
  describe(`OrderStore contract: ${name}`, () => {
    let store: OrderStore;
    let cleanup: (() => Promise<void>) | undefined;
    const suite = randomUUID().slice(0, 8);
    let counter = 0;
    const newId = (): string => `contract-${suite}-${++counter}`;
    const order = (id: string): Order => ({
      id,
      amount: 100,
      delayMs: { payment: 5 },
      failCompensation: { vendor: 2 },
    });
    const newRun = (orderId: string, extra: Partial<NewRun> = {}): NewRun => ({
      runId: randomUUID(),
      orderId,
      order: order(orderId),
      owner: 'instance-a',
      leaseUntil: 11_000,
      now: 1_000,
      ...extra,
    });
    const keyed = (
      orderId: string,
      key: string,
      extra: Partial<NewRun> = {},
    ): NewRun & { idempotencyKey: string } => ({
      ...newRun(orderId, extra),
      fingerprint: 'print-a',
      ...extra,
      idempotencyKey: key,
    });
    const failed: RecordedOutcome = {
      status: 'error',
      steps: [
        { name: 'payment', status: 'ok', durationMs: 5.25, compensation: 'pending' },
        {
          name: 'vendor',
          status: 'error',
          durationMs: 7,
          detail: 'vendor_unavailable',
          compensation: 'not_needed',
        },
        { name: 'courier', status: 'canceled', durationMs: 7.5, compensation: 'not_needed' },
      ],
      error: { kind: 'vendor_unavailable', message: 'vendor is unavailable' },
    };
    const pending = (name: string, nextAttemptAt: number): Compensation => ({
      name,
      status: 'pending',
      attempts: 0,
      nextAttemptAt,
      needsOperator: false,
    });
    const finishOf = (run: NewRun, extra: Partial<FinishInput> = {}): FinishInput => ({
      runId: run.runId,
      owner: run.owner,
      outcome: failed,
      compensations: [pending('payment', 5_000)],
      now: 3_000,
      ...extra,
    });

    beforeAll(async () => {
      ({ store, cleanup } = await open());
    });
    afterAll(async () => {
      await store.close();
      await cleanup?.();
    });

    it('begin records a running run, found by order id and by run id', async () => {
      const run = newRun(newId());
      expect(await store.begin(run)).toEqual({ created: true });
      const recorded = await store.get(run.orderId);
      expect(recorded).toEqual({
        runId: run.runId,
        orderId: run.orderId,
        idempotencyKey: undefined,
        fingerprint: undefined,
        order: order(run.orderId),
        state: 'running',
        attempt: 1,
        owner: 'instance-a',
        leaseUntil: 11_000,
        outcome: undefined,
        compensations: [],
        createdAt: 1_000,
        updatedAt: 1_000,
        finishedAt: undefined,
      });
      expect(await store.getRun(run.runId)).toEqual(recorded);
    });

    it('unkeyed runs of one order id all run; get returns the most recent', async () => {
      const id = newId();
      const runs = [newRun(id), newRun(id, { now: 2_000 }), newRun(id, { now: 3_000 })];
      for (const run of runs) expect((await store.begin(run)).created).toBe(true);
      expect((await store.get(id))?.runId).toBe(runs[2]?.runId);
      expect((await store.getRun(runs[0]?.runId ?? ''))?.orderId).toBe(id);
    });

    it('get, getRun and getByKey of unknown ids resolve undefined', async () => {
      expect(await store.get(newId())).toBeUndefined();
      expect(await store.getRun(randomUUID())).toBeUndefined();
      expect(await store.getByKey(newId())).toBeUndefined();
    });

    it('begin with a key already held returns the holder and changes nothing', async () => {
      const key = newId();
      const first = keyed(newId(), key);
      await store.begin(first);
      const again = await store.begin(
        keyed(newId(), key, { fingerprint: 'print-b', owner: 'instance-b' }),
      );
      expect(again.created).toBe(false);
      if (again.created) return;
      expect(again.existing).toMatchObject({
        runId: first.runId,
        idempotencyKey: key,
        fingerprint: 'print-a',
        owner: 'instance-a',
      });
      expect((await store.getByKey(key))?.runId).toBe(first.runId);
    });

    it('exactly one of 50 concurrent begins with one key creates the run', async () => {
      const key = newId();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          store.begin(keyed(newId(), key, { owner: `instance-${i}` })),
        ),
      );
      expect(results.filter((result) => result.created)).toHaveLength(1);
      const holder = await store.getByKey(key);
      for (const result of results) {
        if (!result.created) expect(result.existing.runId).toBe(holder?.runId);
      }
    });

    it('500 concurrent begins and finishes are each recorded', async () => {
      const runs = Array.from({ length: 500 }, () => newRun(newId()));
      expect((await Promise.all(runs.map((run) => store.begin(run)))).every((r) => r.created)).toBe(
        true,
      );
      const finished = await Promise.all(
        runs.map((run) => store.finish(finishOf(run, { compensations: [] }))),
      );
      expect(finished.every(Boolean)).toBe(true);
      const sample = await store.getRun(runs[250]?.runId ?? '');
      expect(sample?.state).toBe('finished');
      expect(sample?.outcome).toEqual(failed);
    });

    it('finish records the outcome and compensations, only for the owner, once', async () => {
      const run = newRun(newId());
      await store.begin(run);
      const compensations: Compensation[] = [
        pending('payment', 5_000),
        { name: 'vendor', status: 'not_needed', attempts: 0, needsOperator: false },
        {
          name: 'courier',
          status: 'compensation_failed',
          attempts: 2,
          nextAttemptAt: 7_000,
          lastError: 'timeout',
          needsOperator: false,
        },
      ];
      const input = finishOf(run, { compensations });
      expect(await store.finish({ ...input, owner: 'intruder' })).toBe(false);
      expect(await store.finish(input)).toBe(true);
      expect(await store.finish(input)).toBe(false);
      expect(await store.getRun(run.runId)).toMatchObject({
        state: 'finished',
        owner: undefined,
        leaseUntil: undefined,
        outcome: failed,
        compensations,
        updatedAt: 3_000,
        finishedAt: 3_000,
      });
    });

    it('a successful outcome reads back as it was written', async () => {
      const run = newRun(newId());
      await store.begin(run);
      const ok: RecordedOutcome = {
        status: 'ok',
        steps: [
          { name: 'payment', status: 'ok', durationMs: 1.5 },
          { name: 'vendor', status: 'ok', durationMs: 2 },
          { name: 'courier', status: 'ok', durationMs: 3.125 },
        ],
      };
      await store.finish(finishOf(run, { outcome: ok, compensations: [] }));
      expect((await store.getRun(run.runId))?.outcome).toEqual(ok);
    });

    it('due compensations are claimed once, and not before they are due', async () => {
      const run = newRun(newId());
      await store.begin(run);
      await store.finish(
        finishOf(run, {
          compensations: [
            {
              name: 'payment',
              status: 'compensation_failed',
              attempts: 1,
              nextAttemptAt: 5_000,
              lastError: 'timeout',
              needsOperator: false,
            },
            pending('vendor', 6_000),
            {
              name: 'courier',
              status: 'compensation_failed',
              attempts: 8,
              lastError: 'internal',
              needsOperator: true,
            },
          ],
        }),
      );
      const mine = async (now: number, claimUntil: number): Promise<string[]> => {
        const claimed = await store.claimDueCompensations(now, claimUntil, 1000);
        const own = claimed.find((candidate) => candidate.runId === run.runId);
        return (own?.compensations ?? [])
          .filter((c) => c.nextAttemptAt !== undefined && c.nextAttemptAt <= now)
          .map((c) => c.name);
      };
      expect(await mine(4_999, 9_000)).toEqual([]);
      expect(await mine(5_500, 9_000)).toEqual(['payment']);
      // Claimed until 9000: payment is not claimed again before then; vendor is due now.
      expect(await mine(6_000, 9_000)).toEqual(['vendor']);
      expect(await mine(8_999, 12_000)).toEqual([]);
      expect((await mine(9_000, 12_000)).sort()).toEqual(['payment', 'vendor']);
      const compensated: Compensation[] = [
        { name: 'payment', status: 'compensated', attempts: 2, needsOperator: false },
        { name: 'vendor', status: 'compensated', attempts: 1, needsOperator: false },
        {
          name: 'courier',
          status: 'compensation_failed',
          attempts: 8,
          lastError: 'internal',
          needsOperator: true,
        },
      ];
      await store.recordCompensations(run.runId, compensated, 9_500);
      expect(await store.getRun(run.runId)).toMatchObject({
        compensations: compensated,
        updatedAt: 9_500,
      });
      // Nothing left to the retries: the flagged one waits for an operator.
      expect(await mine(100_000, 200_000)).toEqual([]);
    });

    it('claimOrphans takes expired leases, and with anyOwner every run of another', async () => {
      const live = newRun(newId(), { owner: 'other', leaseUntil: 50_000 });
      const expired = newRun(newId(), { owner: 'dead', leaseUntil: 20_000 });
      const mineExpired = newRun(newId(), { owner: 'me', leaseUntil: 20_000 });
      for (const run of [live, expired, mineExpired]) await store.begin(run);
      const ids = (runs: { runId: string }[]): string[] => runs.map((run) => run.runId);
      const claimed = ids(
        await store.claimOrphans('me', 30_000, 40_000, { anyOwner: false, limit: 1000 }),
      );
      expect(claimed).toContain(expired.runId);
      // A run of this very owner whose lease ran out is one whose execution broke off.
      expect(claimed).toContain(mineExpired.runId);
      expect(claimed).not.toContain(live.runId);
      expect(await store.getRun(expired.runId)).toMatchObject({ owner: 'me', leaseUntil: 40_000 });
      expect(
        ids(await store.claimOrphans('me', 30_000, 40_000, { anyOwner: false, limit: 1000 })),
      ).not.toContain(expired.runId);
      // A live owner renews its lease and keeps its run; renewing another's run does nothing.
      await store.renewLeases('other', [live.runId, expired.runId], 90_000, 30_000);
      expect((await store.getRun(expired.runId))?.leaseUntil).toBe(40_000);
      expect((await store.getRun(live.runId))?.leaseUntil).toBe(90_000);
      expect(
        ids(await store.claimOrphans('third', 60_000, 70_000, { anyOwner: false, limit: 1000 })),
      ).not.toContain(live.runId);
      expect(
        ids(await store.claimOrphans('third', 60_000, 70_000, { anyOwner: true, limit: 1000 })),
      ).toContain(live.runId);
    });

    it('claimOrphans takes at most its limit', async () => {
      for (let i = 0; i < 3; i++) {
        await store.begin(newRun(newId(), { owner: 'dead', leaseUntil: 100 }));
      }
      const claimed = await store.claimOrphans('me', 150, 1_000, { anyOwner: false, limit: 2 });
      expect(claimed).toHaveLength(2);
    });

    it('concurrent claimOrphans never hand one run to two instances', async () => {
      const runs = Array.from({ length: 4 }, () =>
        newRun(newId(), { owner: 'dead', leaseUntil: 100 }),
      );
      for (const run of runs) await store.begin(run);
      const claims = await Promise.all(
        ['x', 'y', 'z'].map((owner) =>
          store.claimOrphans(owner, 200_000, 300_000, { anyOwner: false, limit: 1000 }),
        ),
      );
      const mine = claims
        .flat()
        .map((run) => run.runId)
        .filter((id) => runs.some((run) => run.runId === id));
      expect(mine.sort()).toEqual(runs.map((run) => run.runId).sort());
    });

    it('restart runs a key again only after a retryable outcome with settled compensations', async () => {
      const key = newId();
      const first = keyed(newId(), key);
      await store.begin(first);
      const timedOut: RecordedOutcome = {
        ...failed,
        error: { kind: 'timeout', message: 'order did not complete within 10 ms' },
      };
      await store.finish(finishOf(first, { outcome: timedOut }));
      const again = (extra: Partial<NewRun> = {}) =>
        keyed(first.orderId, key, { owner: 'b', now: 4_000, ...extra });
      // Its compensation is still open.
      expect(await store.restart(again(), retryableKinds)).toBe(false);
      await store.recordCompensations(
        first.runId,
        [{ name: 'payment', status: 'compensated', attempts: 1, needsOperator: false }],
        4_000,
      );
      expect(await store.restart(again({ fingerprint: 'other' }), retryableKinds)).toBe(false);
      expect(await store.restart(again(), ['payment_declined'])).toBe(false);
      const attempts = Array.from({ length: 10 }, (_, i) => again({ owner: `b${i}`, now: 5_000 }));
      const results = await Promise.all(attempts.map((run) => store.restart(run, retryableKinds)));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = attempts[results.indexOf(true)];
      expect(await store.getByKey(key)).toMatchObject({
        runId: winner?.runId,
        state: 'running',
        attempt: 2,
        outcome: undefined,
      });
      // The first run keeps its record, without the key.
      expect(await store.getRun(first.runId)).toMatchObject({
        state: 'finished',
        idempotencyKey: undefined,
        outcome: timedOut,
      });
      expect((await store.get(first.orderId))?.runId).toBe(winner?.runId);
    });

    it('a final outcome is never restarted', async () => {
      const key = newId();
      const first = keyed(newId(), key);
      await store.begin(first);
      await store.finish(finishOf(first, { compensations: [] }));
      expect(await store.restart(keyed(first.orderId, key), retryableKinds)).toBe(false);
    });

    it('openCompensations lists runs with an open or flagged compensation; settleFlag settles', async () => {
      const open = newRun(newId());
      const flagged = newRun(newId());
      const settled = newRun(newId());
      for (const run of [open, flagged, settled]) await store.begin(run);
      await store.finish(finishOf(open));
      await store.finish(
        finishOf(flagged, {
          compensations: [
            {
              name: 'payment',
              status: 'compensation_failed',
              attempts: 8,
              lastError: 'internal',
              needsOperator: true,
            },
          ],
        }),
      );
      await store.finish(finishOf(settled, { compensations: [] }));
      const listed = (await store.openCompensations(10_000)).map((run) => run.runId);
      expect(listed).toContain(open.runId);
      expect(listed).toContain(flagged.runId);
      expect(listed).not.toContain(settled.runId);
      expect(await store.settleFlag(open.runId, 'payment', 8_000)).toBe(false);
      expect(await store.settleFlag(flagged.runId, 'vendor', 8_000)).toBe(false);
      expect(await store.settleFlag(flagged.runId, 'payment', 8_000)).toBe(true);
      expect(await store.getRun(flagged.runId)).toMatchObject({
        updatedAt: 8_000,
        compensations: [
          {
            name: 'payment',
            status: 'settled_by_operator',
            attempts: 8,
            lastError: 'internal',
            needsOperator: false,
          },
        ],
      });
      expect((await store.openCompensations(10_000)).map((run) => run.runId)).not.toContain(
        flagged.runId,
      );
      expect(await store.settleFlag(flagged.runId, 'payment', 9_000)).toBe(false);
    });

    it('backlogMs is a finite number of milliseconds, 0 or more', () => {
      const backlog = store.backlogMs();
      expect(Number.isFinite(backlog)).toBe(true);
      expect(backlog).toBeGreaterThanOrEqual(0);
    });

    it('50 concurrent keyed submissions through two instances execute once', async () => {
      const services = ['one', 'two'].map((instance) =>
        testService({
          store,
          ownsStore: false,
          instanceId: `${suite}-${instance}`,
          delays: { payment: 5, vendor: 5, courier: 5 },
        }),
      );
      const id = newId();
      const key = newId();
      const body = { order_id: id, amount: 3 };
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (services[i % 2] as OrderService).submit({
            order: { id, amount: 3 },
            idempotencyKey: key,
            body,
            parent: new CancelSource(),
          }),
        ),
      );
      await Promise.all(services.map((service) => service.close()));
      const started = services.reduce((sum, service) => sum + service.tracker.started, 0);
      expect(started).toBe(3);
      expect(answers.filter((a) => a.outcome !== undefined && !a.replayed)).toHaveLength(1);
      for (const answer of answers) {
        if (answer.outcome !== undefined) expect(answer.outcome.status).toBe('ok');
        else expect(answer.error?.kind).toBe('order_in_progress');
      }
      expect((await store.getByKey(key))?.state).toBe('finished');
    });
  });
}
