import { afterEach, describe, expect, it } from 'vitest';
import { CancelSource, type Cancellation } from '../../src/core/cancellation.js';
import { Tracker } from '../../src/core/tracker.js';
import { OrderLedger } from '../../src/ledger/order-ledger.js';
import type { Compensation, RecordedOutcome } from '../../src/ledger/order-store.js';
import type { Submission } from '../../src/ledger/submission.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import { Pipeline } from '../../src/order/pipeline.js';
import type { Step } from '../../src/order/step.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { deferred, type Deferred } from '../helpers.js';

// A repeat of a keyed order whose compensation is flagged for an operator: the ledger on its
// own, over a memory store, on a clock the tests move.

let now = 1_000_000;
const opened: OrderLedger[] = [];
/** Resolved when the vendor step starts (the other steps have been started before it). */
let vendorStarted: Deferred<void> = deferred();

afterEach(async () => {
  for (const ledger of opened.splice(0)) await ledger.close();
  now = 1_000_000;
});

/**
 * Steps that succeed at once, but vendor, which waits for the order's abort; each
 * compensation fails while its attempt is within the order's `failCompensation` count.
 */
const steps: Step<Order>[] = (['payment', 'vendor', 'courier'] as const).map((name) => ({
  name,
  run: (_order: Order, cancel: Cancellation) => {
    if (name !== 'vendor') return Promise.resolve();
    vendorStarted.resolve();
    return new Promise<void>((_resolve, reject) => cancel.onAbort(reject));
  },
  compensate: (order: Order, _cancel: Cancellation, attempt: number) =>
    attempt <= (order.failCompensation?.[name] ?? 0)
      ? Promise.reject(new OrderError('internal', `undoing ${name} failed`))
      : Promise.resolve(),
}));

/** ledgerOver builds a ledger over `store` whose compensations get `maxAttempts` attempts. */
function ledgerOver(store: MemoryOrderStore, maxAttempts: number) {
  const tracker = new Tracker();
  const ledger = new OrderLedger({
    store,
    pipeline: new Pipeline(steps, { tracker }),
    steps,
    leaseMs: 15_000,
    compensationTimeoutMs: 2000,
    compensationMaxAttempts: maxAttempts,
    compensationRetryBaseMs: 10,
    compensationRetryMaxMs: 60_000,
    now: () => now,
    random: () => 0.5,
  });
  opened.push(ledger);
  const submit = (order: Order, key: string, cancel: Cancellation = new CancelSource()) =>
    ledger.submit(order, {
      idempotencyKey: key,
      fingerprint: `fingerprint of ${JSON.stringify(order)}`,
      cancel,
    });
  return { ledger, tracker, submit };
}

/**
 * timingOut submits `order` with `key` through `submit`, and aborts it with `timeout` once its
 * steps have started: payment and courier are done by then, vendor is canceled.
 */
async function timingOut(
  submit: (order: Order, key: string, cancel: Cancellation) => Promise<Submission>,
  order: Order,
  key: string,
): Promise<Submission> {
  vendorStarted = deferred();
  const cancel = new CancelSource();
  const answer = submit(order, key, cancel);
  await vendorStarted.promise;
  cancel.abort(new OrderError('timeout', 'order did not complete within 2000 ms'));
  return answer;
}

/** recorded is `submission` as a recorded answer; it fails the test on a refusal. */
function recorded(submission: Submission): Exclude<Submission, string> {
  if (typeof submission === 'string') throw new Error(`want a recorded answer, got ${submission}`);
  return submission;
}

const kindOf = (answer: Exclude<Submission, string>): string => answer.outcome.error?.kind ?? 'ok';

const flagged = (name: string): Compensation => ({
  name,
  status: 'compensation_failed',
  attempts: 1,
  lastError: 'internal',
  needsOperator: true,
});

const timedOut: RecordedOutcome = {
  status: 'error',
  steps: [
    { name: 'payment', status: 'ok', durationMs: 1, compensation: 'pending' },
    { name: 'vendor', status: 'canceled', durationMs: 2000, compensation: 'not_needed' },
    { name: 'courier', status: 'ok', durationMs: 1, compensation: 'pending' },
  ],
  error: { kind: 'timeout', message: 'order did not complete within 2000 ms' },
};

/** recordFinished records a finished keyed run of `order` with `outcome` and `compensations`. */
async function recordFinished(
  store: MemoryOrderStore,
  order: Order,
  key: string,
  outcome: RecordedOutcome,
  compensations: Compensation[],
): Promise<void> {
  const run = {
    runId: `run-of-${key}`,
    orderId: order.id,
    idempotencyKey: key,
    fingerprint: `fingerprint of ${JSON.stringify(order)}`,
    order,
    owner: 'another-instance',
    leaseUntil: now + 15_000,
    now,
  };
  await store.begin(run);
  await store.finish({ runId: run.runId, owner: run.owner, outcome, compensations, now });
}

describe('a repeated key whose compensation is flagged for an operator', () => {
  it('after an interrupted run: replayed with the flag, no step runs; once the operator settles it, runs anew', async () => {
    const store = new MemoryOrderStore();
    const order: Order = { id: 'f-1', amount: 1, failCompensation: { payment: 1 } };
    // A process died while the order ran: it is recovered at start-up, interrupted, and its
    // payment's one compensation attempt fails, so it is flagged.
    await store.begin({
      runId: 'dead-run',
      orderId: order.id,
      idempotencyKey: 'k-1',
      fingerprint: `fingerprint of ${JSON.stringify(order)}`,
      order,
      owner: 'dead-instance',
      leaseUntil: now + 60_000,
      now,
    });
    const { ledger, tracker, submit } = ledgerOver(store, 1);
    await ledger.start();
    await ledger.idle();
    const run = await ledger.get(order.id);
    expect(
      run?.compensations.map((c) => [c.name, c.status, c.needsOperator]),
      'recovered and flagged',
    ).toEqual([
      ['payment', 'compensation_failed', true],
      ['vendor', 'compensated', false],
      ['courier', 'compensated', false],
    ]);

    const repeat = await submit(order, 'k-1');
    expect(repeat, 'the repeat').toStrictEqual({
      outcome: run?.outcome,
      replayed: true,
      needsOperator: true,
    });
    expect(kindOf(recorded(repeat)), 'its kind').toBe('interrupted');
    expect(tracker.started, 'steps run').toBe(0);
    expect(await submit({ ...order, amount: 2 }, 'k-1'), 'another body with the key').toBe(
      'idempotency_conflict',
    );

    expect(await ledger.settleFlag('dead-run', 'payment'), 'settled').toBe(true);
    const rerun = recorded(await timingOut(submit, order, 'k-1'));
    expect([kindOf(rerun), rerun.replayed, rerun.needsOperator], 'run anew').toEqual([
      'timeout',
      false,
      undefined,
    ]);
    expect(tracker.started, 'steps run').toBe(3);
    expect((await ledger.get(order.id))?.attempt, 'attempt').toBe(2);
  });

  it('after a timeout: order_in_progress while the compensation is retried, replayed with the flag once it is flagged', async () => {
    const store = new MemoryOrderStore();
    const order: Order = { id: 'f-2', amount: 1, failCompensation: { courier: 1000 } };
    const { ledger, tracker, submit } = ledgerOver(store, 3);
    const answer = recorded(await timingOut(submit, order, 'k-2'));
    expect(kindOf(answer), 'timed out').toBe('timeout');
    await ledger.idle();
    expect(
      (await ledger.get(order.id))?.compensations.map((c) => [c.name, c.status, c.needsOperator]),
      'after the first attempt',
    ).toEqual([
      ['payment', 'compensated', false],
      ['vendor', 'not_needed', false],
      ['courier', 'compensation_failed', false],
    ]);
    expect(await submit(order, 'k-2'), 'while it is retried').toBe('order_in_progress');

    for (let attempt = 2; attempt <= 3; attempt++) {
      now += 60_000;
      await ledger.sweep();
      await ledger.idle();
    }
    expect((await ledger.get(order.id))?.compensations[2], 'flagged').toMatchObject({
      attempts: 3,
      needsOperator: true,
    });
    expect(await submit(order, 'k-2'), 'once flagged').toStrictEqual({
      outcome: answer.outcome,
      replayed: true,
      needsOperator: true,
    });
    expect(tracker.started, 'steps run').toBe(3);
  });

  it('is order_in_progress while another compensation of the run is still left to the retries', async () => {
    const store = new MemoryOrderStore();
    const order: Order = { id: 'f-3', amount: 1 };
    await recordFinished(store, order, 'k-3', timedOut, [
      flagged('payment'),
      { name: 'vendor', status: 'not_needed', attempts: 0, needsOperator: false },
      {
        name: 'courier',
        status: 'compensation_failed',
        attempts: 1,
        lastError: 'internal',
        nextAttemptAt: now + 60_000,
        needsOperator: false,
      },
    ]);
    const { submit } = ledgerOver(store, 3);
    expect(await submit(order, 'k-3')).toBe('order_in_progress');
  });

  it('after a final outcome: replayed, with the flag', async () => {
    const store = new MemoryOrderStore();
    const order: Order = { id: 'f-4', amount: 1, failStep: 'courier' };
    const noCourier: RecordedOutcome = {
      ...timedOut,
      error: { kind: 'no_courier', message: 'no courier is available' },
    };
    await recordFinished(store, order, 'k-4', noCourier, [
      flagged('payment'),
      { name: 'vendor', status: 'compensated', attempts: 1, needsOperator: false },
      { name: 'courier', status: 'not_needed', attempts: 0, needsOperator: false },
    ]);
    const { submit } = ledgerOver(store, 3);
    expect(await submit(order, 'k-4')).toStrictEqual({
      outcome: noCourier,
      replayed: true,
      needsOperator: true,
    });
  });
});
