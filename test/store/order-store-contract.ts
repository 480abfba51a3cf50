import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { Semaphore } from '../../src/core/semaphore.js';
import { OrderLedger, retryableKinds } from '../../src/ledger/order-ledger.js';
import type {
  Compensation,
  FinishInput,
  NewRun,
  OrderRun,
  OrderStore,
  RecordedOutcome,
  RecoverOrphansInput,
} from '../../src/ledger/order-store.js';
import type { Order } from '../../src/order/order.js';
import { Pipeline } from '../../src/order/pipeline.js';
import { simulatedSteps } from '../../src/order/simulated-steps.js';
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

    const ids = (runs: readonly { runId: string }[]): string[] => runs.map((run) => run.runId);
    const interrupted: RecordedOutcome = {
      status: 'error',
      steps: [
        { name: 'payment', status: 'interrupted', durationMs: 0, compensation: 'pending' },
        { name: 'vendor', status: 'interrupted', durationMs: 0, compensation: 'not_needed' },
      ],
      error: { kind: 'interrupted', message: 'the order was interrupted' },
    };
    const interruptedCompensations = (now: number): Compensation[] => [
      pending('payment', now + 4_000),
      { name: 'vendor', status: 'not_needed', attempts: 0, needsOperator: false },
    ];
    /** recover is one recoverOrphans call by `owner` at `now`, up to 10,000 runs. */
    const recover = (
      owner: string,
      now: number,
      extra: Partial<RecoverOrphansInput> = {},
    ): Promise<OrderRun[]> =>
      store.recoverOrphans({
        owner,
        now,
        anyOwner: false,
        limit: 10_000,
        outcome: interrupted,
        compensations: interruptedCompensations(now),
        ...extra,
      });
    /**
     * drain recovers every running run left by earlier tests (the store is shared by the
     * suite), so that a test can count exactly what it recovers.
     */
    const drain = async (): Promise<void> => {
      while ((await recover('drain', 0, { anyOwner: true })).length > 0);
    };
    /**
     * orphans begins `count` runs of a dead owner whose lease runs until `leaseUntil`; their
     * orders' compensations succeed at the first attempt.
     */
    const orphans = async (count: number, leaseUntil: number): Promise<NewRun[]> => {
      const runs = Array.from({ length: count }, () => {
        const id = newId();
        return newRun(id, { owner: 'dead', leaseUntil, order: { id, amount: 1 } });
      });
      await Promise.all(runs.map((run) => store.begin(run)));
      return runs;
    };

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

    it('recoverOrphans records expired runs interrupted, and with anyOwner every run of another', async () => {
      const live = newRun(newId(), { owner: 'other', leaseUntil: 50_000 });
      const expired = newRun(newId(), { owner: 'dead', leaseUntil: 20_000 });
      const mineExpired = newRun(newId(), { owner: 'me', leaseUntil: 20_000 });
      for (const run of [live, expired, mineExpired]) await store.begin(run);
      const taken = await recover('me', 30_000);
      const claimed = ids(taken);
      expect(claimed).toContain(expired.runId);
      // A run of this very owner whose lease ran out is one whose execution broke off.
      expect(claimed).toContain(mineExpired.runId);
      expect(claimed, 'a lease not expired').not.toContain(live.runId);
      const recorded = await store.getRun(expired.runId);
      expect(recorded).toMatchObject({
        state: 'finished',
        owner: undefined,
        leaseUntil: undefined,
        outcome: interrupted,
        compensations: interruptedCompensations(30_000),
        updatedAt: 30_000,
        finishedAt: 30_000,
      });
      expect(
        taken.find((run) => run.runId === expired.runId),
        'returned as recorded',
      ).toEqual(recorded);
      expect(ids(await recover('me', 30_000)), 'taken once').not.toContain(expired.runId);
      expect(await store.finish(finishOf(expired)), 'its dead owner is fenced off').toBe(false);
      // A live owner renews its lease and keeps its run; renewing another's run does nothing.
      await store.renewLeases('other', [live.runId, expired.runId], 90_000, 30_000);
      expect((await store.getRun(live.runId))?.leaseUntil).toBe(90_000);
      expect(ids(await recover('third', 60_000)), 'renewed').not.toContain(live.runId);
      expect(
        ids(await recover('other', 60_000, { anyOwner: true })),
        'with anyOwner, the recoverer’s own run',
      ).not.toContain(live.runId);
      expect((await store.getRun(live.runId))?.state).toBe('running');
      expect(ids(await recover('third', 60_000, { anyOwner: true }))).toContain(live.runId);
    });

    it('recoverOrphans takes the oldest orphans first, at most its limit', async () => {
      await drain();
      const runs = Array.from({ length: 3 }, () =>
        newRun(newId(), { owner: 'dead', leaseUntil: 100 }),
      );
      for (const run of runs) await store.begin(run);
      expect(ids(await recover('me', 150, { limit: 2 })).sort()).toEqual(
        ids(runs.slice(0, 2)).sort(),
      );
      expect(ids(await recover('me', 150, { limit: 2 }))).toEqual(ids(runs.slice(2)));
    });

    it('1,000 orphans are recovered in one call per limit, each once, all interrupted', async () => {
      await drain();
      const runs = await orphans(1_000, 100);
      const batches = [];
      for (;;) {
        const batch = await recover('me', 150, { limit: 250 });
        batches.push(batch);
        if (batch.length === 0) break;
      }
      expect(batches.map((batch) => batch.length)).toEqual([250, 250, 250, 250, 0]);
      expect(ids(batches.flat()).sort()).toEqual(ids(runs).sort());
      const recorded = await Promise.all(runs.map((run) => store.getRun(run.runId)));
      expect(recorded.filter((run) => run?.outcome?.error?.kind !== 'interrupted')).toEqual([]);
    });

    it('concurrent recoverers never take one run twice', async () => {
      await drain();
      const runs = await orphans(1_000, 100);
      const recoverer = async (owner: string): Promise<string[]> => {
        const taken: string[] = [];
        for (;;) {
          const batch = await recover(owner, 150, { limit: 50 });
          if (batch.length === 0) return taken;
          taken.push(...ids(batch));
        }
      };
      const taken = await Promise.all(['x', 'y', 'z'].map(recoverer));
      // Each run once: as many taken as there are runs, and every run among them.
      expect(taken.flat()).toHaveLength(runs.length);
      expect(taken.flat().sort()).toEqual(ids(runs).sort());
    });

    it('a ledger records 1,000 orphans interrupted within 5 s and compensates them, leaving its own run alone', async () => {
      await drain();
      const now = 1_000_000;
      const runs = await orphans(1_000, now - 1);
      const courierPool = new Semaphore(4);
      const zero = { payment: 0, vendor: 0, courier: 0 };
      const steps = simulatedSteps({ courierPool, delays: zero, compensationDelays: zero });
      const recovered: string[] = [];
      const ledger = new OrderLedger({
        store,
        pipeline: new Pipeline(steps),
        steps,
        leaseMs: 15_000,
        compensationTimeoutMs: 2_000,
        compensationMaxAttempts: 3,
        compensationRetryBaseMs: 10,
        compensationRetryMaxMs: 1_000,
        hooks: { orderRecovered: (orderId) => recovered.push(orderId) },
        now: () => now,
      });
      // An order this ledger executes meanwhile: never taken for an orphan.
      const ownId = newId();
      const own = ledger.submit(
        { id: ownId, amount: 1, delayMs: { payment: 300 } },
        { cancel: new CancelSource() },
      );
      await vi.waitFor(async () => {
        expect((await store.get(ownId))?.state).toBe('running');
      });
      const startedAt = performance.now();
      await ledger.start();
      const elapsedMs = performance.now() - startedAt;
      await ledger.close();
      // A generous bound that never flakes; the figures are bench/recovery.ts's.
      expect(elapsedMs).toBeLessThan(5_000);
      expect(recovered.sort()).toEqual(runs.map((run) => run.orderId).sort());
      const recorded = await Promise.all(runs.map((run) => store.getRun(run.runId)));
      const notUndone = recorded.filter(
        (run) =>
          run?.outcome?.error?.kind !== 'interrupted' ||
          run.compensations.some((c) => c.status !== 'compensated'),
      );
      expect(notUndone).toEqual([]);
      const answer = await own;
      expect(typeof answer === 'string' ? answer : answer.outcome.status).toBe('ok');
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

    it('restart keeps a key whose compensation is flagged until an operator settles it', async () => {
      const key = newId();
      const first = keyed(newId(), key);
      await store.begin(first);
      const interrupted: RecordedOutcome = {
        ...failed,
        error: { kind: 'interrupted', message: 'the order was interrupted by a restart' },
      };
      await store.finish(
        finishOf(first, {
          outcome: interrupted,
          compensations: [
            {
              name: 'payment',
              status: 'compensation_failed',
              attempts: 1,
              lastError: 'internal',
              needsOperator: true,
            },
          ],
        }),
      );
      const again = () => keyed(first.orderId, key, { owner: 'b', now: 4_000 });
      expect(await store.restart(again(), retryableKinds), 'while flagged').toBe(false);
      expect(await store.getByKey(key), 'the key stays with the flagged run').toMatchObject({
        runId: first.runId,
        state: 'finished',
        compensations: [{ name: 'payment', needsOperator: true }],
      });
      expect(await store.settleFlag(first.runId, 'payment', 5_000)).toBe(true);
      const rerun = again();
      expect(await store.restart(rerun, retryableKinds), 'once settled').toBe(true);
      expect(await store.getByKey(key)).toMatchObject({
        runId: rerun.runId,
        state: 'running',
        attempt: 2,
      });
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
