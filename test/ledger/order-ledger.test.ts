import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { CancelSource, type Cancellation } from '../../src/core/cancellation.js';
import { Tracker } from '../../src/core/tracker.js';
import { OrderLedger } from '../../src/ledger/order-ledger.js';
import type { OrderRun } from '../../src/ledger/order-store.js';
import { retryDelayMs } from '../../src/ledger/saga.js';
import type { Submission } from '../../src/ledger/submission.js';
import { OrderError, kindMessage, type ErrorKind } from '../../src/order/errors.js';
import type { Order, StepName } from '../../src/order/order.js';
import { Pipeline } from '../../src/order/pipeline.js';
import type { Step } from '../../src/order/step.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { deferred, flushMicrotasks, promiseState, type Deferred } from '../helpers.js';

// The ledger on its own: a memory store, a pipeline of simple steps, a clock the tests move.

const failures: Record<StepName, ErrorKind> = {
  payment: 'payment_declined',
  vendor: 'vendor_unavailable',
  courier: 'no_courier',
};

/** What a test controls of the steps, and what it can read of them. */
interface StepControl {
  /** The steps whose compensation ran, in the order they ran. */
  readonly undone: string[];
  /** Resolved when a step starts, by name; a step waits on its gate, if set, until it opens. */
  readonly started: Partial<Record<StepName, Deferred<void>>>;
  readonly gates: Partial<Record<StepName, Deferred<void>>>;
  /** If set, every compensation waits for it before it runs. */
  compensationGate: Deferred<void> | undefined;
}

/**
 * orderSteps are payment, vendor and courier: each succeeds at once (after its gate, if any,
 * or rejects with the order's abort reason while it waits), or fails with its kind when the
 * order's `failStep` names it. Its compensation is recorded in `undone`, and fails while
 * the attempt is within the order's `failCompensation` for it.
 */
function orderSteps(control: StepControl): Step<Order>[] {
  return (['payment', 'vendor', 'courier'] as const).map((name) => ({
    name,
    run: async (order: Order, cancel: Cancellation) => {
      control.started[name]?.resolve();
      const gate = control.gates[name];
      if (gate !== undefined) {
        await new Promise<void>((resolve, reject) => {
          const stop = cancel.onAbort(reject);
          gate.promise.then(() => {
            stop();
            resolve();
          }, reject);
        });
      }
      if (order.failStep === name)
        throw new OrderError(failures[name], kindMessage(failures[name]));
    },
    compensate: async (order: Order, _cancel: Cancellation, attempt: number) => {
      await control.compensationGate?.promise;
      if (attempt <= (order.failCompensation?.[name] ?? 0)) {
        throw new OrderError('internal', `undoing ${name} failed (attempt ${attempt})`);
      }
      control.undone.push(name);
    },
  }));
}

/** A ledger under test and what the test reads or moves around it. */
interface Harness extends StepControl {
  readonly ledger: OrderLedger;
  readonly store: MemoryOrderStore;
  readonly tracker: Tracker;
  /** Messages logged, in order. */
  readonly logged: string[];
  /** `orderId/step` of each compensation flagged for an operator. */
  readonly flagged: string[];
  /** Order ids recovered as interrupted. */
  readonly recovered: string[];
  /** submit submits `order` (keyed if `key` is given) under `cancel`. */
  submit(order: Order, key?: string, cancel?: Cancellation): Promise<Submission>;
}

/** The ledger's clock, in epoch milliseconds; tests move it. */
let now = 1_000_000;
const opened: OrderLedger[] = [];

afterEach(async () => {
  for (const ledger of opened.splice(0)) await ledger.close();
  now = 1_000_000;
});

/**
 * harness builds a ledger over `store` (a fresh memory store by default) and the steps of
 * {@link orderSteps}, with compensations retried from 10 ms, three attempts.
 */
function harness(
  options: {
    store?: MemoryOrderStore;
    ownsStore?: boolean;
    compensationMaxAttempts?: number;
    steps?: (control: StepControl) => Step<Order>[];
  } = {},
): Harness {
  const control: StepControl = { undone: [], started: {}, gates: {}, compensationGate: undefined };
  const steps = (options.steps ?? orderSteps)(control);
  const tracker = new Tracker();
  const store = options.store ?? new MemoryOrderStore();
  const logged: string[] = [];
  const log = (_details: object, message: string): void => {
    logged.push(message);
  };
  const flagged: string[] = [];
  const recovered: string[] = [];
  const ledger = new OrderLedger({
    store,
    ownsStore: options.ownsStore,
    pipeline: new Pipeline(steps, { tracker }),
    steps,
    leaseMs: 15_000,
    compensationTimeoutMs: 2000,
    compensationMaxAttempts: options.compensationMaxAttempts ?? 3,
    compensationRetryBaseMs: 10,
    compensationRetryMaxMs: 60_000,
    logger: { info: log, warn: log, error: log },
    hooks: {
      operatorFlagged: (orderId, step) => flagged.push(`${orderId}/${step}`),
      orderRecovered: (orderId) => recovered.push(orderId),
    },
    now: () => now,
    random: () => 0.5,
  });
  opened.push(ledger);
  return Object.assign(control, {
    ledger,
    store,
    tracker,
    logged,
    flagged,
    recovered,
    submit: (order: Order, key?: string, cancel: Cancellation = new CancelSource()) =>
      ledger.submit(order, {
        idempotencyKey: key,
        fingerprint: key === undefined ? undefined : `fingerprint of ${JSON.stringify(order)}`,
        cancel,
      }),
  });
}

/** recorded is `submission` as a recorded answer; it fails the test on a refusal. */
function recorded(submission: Submission): Exclude<Submission, string> {
  if (typeof submission === 'string') throw new Error(`want a recorded answer, got ${submission}`);
  return submission;
}

/** kindOf is the error kind of a recorded answer, or 'ok'. */
const kindOf = (submission: Submission): string =>
  typeof submission === 'string' ? submission : (submission.outcome.error?.kind ?? 'ok');

const statuses = (run: OrderRun | undefined): string[] | undefined =>
  run?.compensations.map((compensation) => compensation.status);

describe('submit without an idempotency key', () => {
  it('runs every submission of one order id; get returns the most recent run', async () => {
    const h = harness();
    const first = await h.submit({ id: 'o2', amount: 10, failStep: 'payment' });
    const second = await h.submit({ id: 'o2', amount: 10, failStep: 'vendor' });
    expect([kindOf(first), recorded(first).replayed], 'first').toEqual(['payment_declined', false]);
    expect([kindOf(second), recorded(second).replayed], 'second').toEqual([
      'vendor_unavailable',
      false,
    ]);
    expect(h.tracker.started, 'steps run').toBe(6);
    expect((await h.ledger.get('o2'))?.outcome, 'recorded').toStrictEqual(recorded(second).outcome);
  });
});

describe('submit with an idempotency key', () => {
  it('a repeat with the same key and fingerprint is answered from the record; no step runs', async () => {
    const h = harness();
    const order: Order = { id: 'o-1', amount: 100, failStep: 'vendor' };
    const first = recorded(await h.submit(order, 'k-1'));
    expect(first.replayed, 'first replayed').toBe(false);
    const started = h.tracker.started;
    expect(await h.submit(order, 'k-1')).toStrictEqual({ outcome: first.outcome, replayed: true });
    expect(h.tracker.started, 'steps run').toBe(started);
  });

  it('the same key with another fingerprint is idempotency_conflict, whether its order finished or runs, here or elsewhere', async () => {
    const store = new MemoryOrderStore();
    const a = harness({ store });
    const b = harness({ store });
    await a.submit({ id: 'o-2', amount: 100 }, 'k-2');
    expect(await a.submit({ id: 'o-2', amount: 101 }, 'k-2'), 'finished').toBe(
      'idempotency_conflict',
    );
    a.gates.payment = deferred();
    const running = a.submit({ id: 'o-3', amount: 100 }, 'k-3');
    expect(await a.submit({ id: 'o-3', amount: 101 }, 'k-3'), 'running here').toBe(
      'idempotency_conflict',
    );
    expect(await b.submit({ id: 'o-3', amount: 101 }, 'k-3'), 'running elsewhere').toBe(
      'idempotency_conflict',
    );
    a.gates.payment.resolve();
    expect(kindOf(await running), 'the order that runs').toBe('ok');
  });

  it('50 concurrent repeats run once; all get the same answer, 49 replayed', async () => {
    const h = harness();
    const order: Order = { id: 'o-race', amount: 7 };
    const answers = (await Promise.all(Array.from({ length: 50 }, () => h.submit(order, 'k')))).map(
      recorded,
    );
    expect(h.tracker.started, 'steps run').toBe(3);
    expect(
      answers.filter((answer) => answer.replayed),
      'replayed',
    ).toHaveLength(49);
    for (const answer of answers) expect(answer.outcome).toStrictEqual(answers[0]?.outcome);
  });

  it('a repeat in another instance while the order runs is order_in_progress; once it finished, it is replayed', async () => {
    const store = new MemoryOrderStore();
    const a = harness({ store });
    const b = harness({ store });
    a.gates.payment = deferred();
    a.started.payment = deferred();
    const order: Order = { id: 'o-3', amount: 1 };
    const running = a.submit(order, 'k-3');
    await a.started.payment.promise;
    expect(await b.submit(order, 'k-3'), 'while it runs').toBe('order_in_progress');
    expect(b.ledger.retryAfterSeconds, 'Retry-After').toBe(1);
    a.gates.payment.resolve();
    const answer = recorded(await running);
    expect(await b.submit(order, 'k-3'), 'once finished').toStrictEqual({
      outcome: answer.outcome,
      replayed: true,
    });
    expect(b.tracker.started, 'steps run by the other instance').toBe(0);
  });

  it('after a retryable outcome the key runs anew once its compensations are done, order_in_progress until then', async () => {
    const h = harness();
    h.gates.payment = deferred();
    h.started.payment = deferred();
    h.compensationGate = deferred();
    const order: Order = { id: 'o-4', amount: 1 };
    const deadline = new CancelSource();
    const first = h.submit(order, 'k-4', deadline);
    await h.started.payment.promise;
    await flushMicrotasks(); // vendor and courier complete
    deadline.abort(new OrderError('timeout', 'order did not complete within 30 ms'));
    const timedOut = recorded(await first);
    expect(
      timedOut.outcome.steps.map((step) => [step.name, step.status, step.compensation]),
      'timed out',
    ).toEqual([
      ['payment', 'canceled', 'not_needed'],
      ['vendor', 'ok', 'pending'],
      ['courier', 'ok', 'pending'],
    ]);
    expect(await h.submit(order, 'k-4'), 'while vendor and courier are undone').toBe(
      'order_in_progress',
    );

    h.compensationGate.resolve();
    await h.ledger.idle();
    h.gates.payment.resolve();
    const again = recorded(await h.submit(order, 'k-4'));
    expect([kindOf(again), again.replayed], 'run anew').toEqual(['ok', false]);
    const run = await h.ledger.get('o-4');
    expect([run?.attempt, run?.idempotencyKey], 'attempt, key').toEqual([2, 'k-4']);
    expect(h.tracker.started, 'steps run').toBe(6);
  });

  it('after a retryable outcome with a flagged compensation the key is replayed with the flag until an operator settles it, then runs anew', async () => {
    const h = harness({ compensationMaxAttempts: 1 });
    h.gates.payment = deferred();
    h.started.payment = deferred();
    const order: Order = { id: 'o-6', amount: 1, failCompensation: { vendor: 1 } };
    const deadline = new CancelSource();
    const first = h.submit(order, 'k-6', deadline);
    await h.started.payment.promise;
    await flushMicrotasks(); // vendor and courier complete
    deadline.abort(new OrderError('timeout', 'order did not complete within 30 ms'));
    const timedOut = recorded(await first);
    expect(kindOf(timedOut), 'first').toBe('timeout');
    await h.ledger.idle();
    const run = await h.ledger.get('o-6');
    expect(statuses(run), 'compensations').toEqual([
      'not_needed',
      'compensation_failed',
      'compensated',
    ]);
    // Nothing happens to it until an operator acts: it is not in progress.
    expect(await h.submit(order, 'k-6'), 'while flagged').toStrictEqual({
      outcome: timedOut.outcome,
      replayed: true,
      needsOperator: true,
    });

    expect(await h.ledger.settleFlag(run?.runId ?? '', 'vendor'), 'settled').toBe(true);
    h.gates.payment.resolve();
    const again = recorded(await h.submit(order, 'k-6'));
    expect([kindOf(again), again.replayed], 'run anew').toEqual(['ok', false]);
    expect((await h.ledger.get('o-6'))?.attempt, 'attempt').toBe(2);
  });

  it('a final outcome is replayed and never runs again', async () => {
    const h = harness();
    const order: Order = { id: 'o-5', amount: 1, failStep: 'payment' };
    const declined = recorded(await h.submit(order, 'k-5'));
    expect(await h.submit(order, 'k-5')).toStrictEqual({
      outcome: declined.outcome,
      replayed: true,
    });
    expect(h.tracker.started, 'steps run').toBe(3);
  });
});

describe('compensation', () => {
  it('answers with the undoing pending, then undoes the completed steps in reverse order', async () => {
    const h = harness();
    h.gates.courier = deferred();
    h.started.courier = deferred();
    const answer = h.submit({ id: 's-1', amount: 1, failStep: 'courier' });
    await h.started.courier.promise;
    await flushMicrotasks(); // payment and vendor complete
    h.gates.courier.resolve();
    const failed = recorded(await answer);
    expect(
      failed.outcome.steps.map((step) => step.compensation),
      'answered',
    ).toEqual(['pending', 'pending', 'not_needed']);
    await h.ledger.idle();
    expect(h.undone, 'undone').toEqual(['vendor', 'payment']);
    expect(statuses(await h.ledger.get('s-1')), 'recorded').toEqual([
      'compensated',
      'compensated',
      'not_needed',
    ]);
  });

  it('runs even when the client went away, under its own cancellation', async () => {
    let compensationCancel: Cancellation | undefined;
    const paid = deferred();
    const h = harness({
      steps: () => [
        {
          name: 'payment',
          run: () => {
            paid.resolve();
            return Promise.resolve();
          },
          compensate: (_order, cancel) => {
            compensationCancel = cancel;
            return Promise.resolve();
          },
        },
        {
          name: 'courier',
          run: (_order, cancel) =>
            new Promise((_resolve, reject) => {
              cancel.onAbort(reject);
            }),
        },
      ],
    });
    const client = new CancelSource();
    const answer = h.submit({ id: 's-2', amount: 1 }, undefined, client);
    await paid.promise;
    client.abort(new OrderError('canceled', 'client left'));
    expect(kindOf(await answer), 'answer').toBe('canceled');
    await h.ledger.idle();
    expect(compensationCancel?.aborted, 'the compensation was aborted').toBe(false);
    expect(statuses(await h.ledger.get('s-2')), 'recorded').toEqual(['compensated', 'not_needed']);
    expect(h.tracker.active, 'steps in flight').toBe(0);
  });

  it('retries a failed compensation when its backoff is due, until it succeeds', async () => {
    const h = harness({ compensationMaxAttempts: 5 });
    await h.submit({ id: 's-3', amount: 1, failStep: 'courier', failCompensation: { payment: 2 } });
    await h.ledger.idle();
    const payment = async () => (await h.ledger.get('s-3'))?.compensations[0];
    expect(await payment(), 'after the answer').toMatchObject({
      status: 'compensation_failed',
      attempts: 1,
      lastError: 'undoing payment failed (attempt 1)',
      nextAttemptAt: now + retryDelayMs(1, 10, 60_000, () => 0.5),
    });
    await h.ledger.sweep();
    expect(await payment(), 'not due yet').toMatchObject({ attempts: 1 });
    now += retryDelayMs(1, 10, 60_000, () => 0.5);
    await h.ledger.sweep();
    expect(await payment(), 'second attempt').toMatchObject({
      status: 'compensation_failed',
      attempts: 2,
    });
    now += retryDelayMs(2, 10, 60_000, () => 0.5);
    await h.ledger.sweep();
    expect(await payment(), 'third attempt').toMatchObject({
      status: 'compensated',
      attempts: 3,
      needsOperator: false,
    });
    expect(
      h.logged.filter((message) => message === 'compensation failed; will retry'),
    ).toHaveLength(2);
  });

  it('flags a compensation for an operator after the attempt limit: recorded, logged and hooked', async () => {
    const h = harness({ compensationMaxAttempts: 2 });
    await h.submit({
      id: 's-4',
      amount: 1,
      failStep: 'courier',
      failCompensation: { vendor: 1000 },
    });
    await h.ledger.idle();
    now += 60_000;
    await h.ledger.sweep();
    expect(h.flagged, 'hooked').toEqual(['s-4/vendor']);
    expect(h.logged, 'logged').toContain('compensation failed for good: operator action needed');
    const run = await h.ledger.get('s-4');
    expect(run?.compensations[1], 'recorded').toMatchObject({
      name: 'vendor',
      status: 'compensation_failed',
      attempts: 2,
      needsOperator: true,
    });
    now += 60_000;
    await h.ledger.sweep();
    expect((await h.ledger.get('s-4'))?.compensations[1]?.attempts, 'no attempt after').toBe(2);
  });

  it('settleFlag settles a flagged compensation once; the run leaves the open list', async () => {
    const h = harness({ compensationMaxAttempts: 1 });
    await h.submit({ id: 's-5', amount: 1, failStep: 'courier', failCompensation: { vendor: 1 } });
    await h.ledger.idle();
    const run = await h.ledger.get('s-5');
    if (run === undefined) throw new Error('want a run');
    expect(
      (await h.ledger.openCompensations(10)).map((open) => open.runId),
      'open before',
    ).toEqual([run.runId]);

    expect(await h.ledger.settleFlag(run.runId, 'vendor'), 'settled').toBe(true);
    expect((await h.ledger.get('s-5'))?.compensations[1], 'recorded').toMatchObject({
      status: 'settled_by_operator',
      needsOperator: false,
    });
    expect(h.logged, 'logged').toContain('an operator settled a compensation');
    expect(await h.ledger.openCompensations(10), 'open after').toEqual([]);
    expect(await h.ledger.settleFlag(run.runId, 'vendor'), 'settled twice').toBe(false);
    expect(await h.ledger.settleFlag(run.runId, 'payment'), 'a step not flagged').toBe(false);
    expect(await h.ledger.settleFlag('no-such-run', 'vendor'), 'an unknown run').toBe(false);
  });
});

describe('recovery', () => {
  it('at start, a run left running by a dead process is recorded interrupted and compensated', async () => {
    const store = new MemoryOrderStore();
    await store.begin({
      runId: 'dead-run',
      orderId: 'r-1',
      order: { id: 'r-1', amount: 1 },
      owner: 'dead-instance',
      leaseUntil: now + 60_000,
      now,
    });
    const h = harness({ store });
    // The store is unshared: at start-up every running run is an orphan, whatever its lease.
    await h.ledger.start();
    await h.ledger.idle();
    const run = await h.ledger.get('r-1');
    expect(run?.state, 'state').toBe('finished');
    expect(run?.outcome?.error, 'error').toEqual({
      kind: 'interrupted',
      message: kindMessage('interrupted'),
    });
    expect(
      run?.outcome?.steps.map((step) => step.status),
      'steps',
    ).toEqual(['interrupted', 'interrupted', 'interrupted']);
    expect(statuses(run), 'compensations').toEqual(['compensated', 'compensated', 'compensated']);
    expect(h.undone, 'undone').toEqual(['courier', 'vendor', 'payment']);
    expect(h.recovered, 'hooked').toEqual(['r-1']);
    expect(h.logged, 'logged').toContain('recovered an order interrupted by a dead instance');
  });

  it('a run whose lease expired is taken over by another instance; its owner, fenced off, answers the record', async () => {
    const store = new MemoryOrderStore();
    const a = harness({ store });
    const b = harness({ store });
    await b.ledger.start(); // its first sweep is behind it: from now on only expired leases count
    a.gates.payment = deferred();
    a.started.payment = deferred();
    const answer = a.submit({ id: 'r-2', amount: 1 });
    await a.started.payment.promise;

    now += 15_000; // the lease runs out at 15 s: not yet expired
    await b.ledger.sweep();
    expect((await store.get('r-2'))?.state, 'at the lease').toBe('running');
    await a.ledger.sweep(); // the owner renews its lease
    now += 10_000;
    await b.ledger.sweep();
    expect((await store.get('r-2'))?.state, 'renewed').toBe('running');

    now += 5001; // past the renewed lease
    await b.ledger.sweep();
    expect((await store.get('r-2'))?.outcome?.error?.kind, 'taken over').toBe('interrupted');
    expect(b.recovered, 'recovered by').toEqual(['r-2']);

    a.gates.payment.resolve();
    const answered = recorded(await answer);
    expect([kindOf(answered), answered.replayed], 'the owner answers the record').toEqual([
      'interrupted',
      true,
    ]);
    expect(a.logged, 'logged').toContain('order was taken over before it finished');
  });
});

describe('close', () => {
  it('waits for the orders in flight and the compensations they started, then closes the store it owns', async () => {
    const store = new MemoryOrderStore();
    const closeStore = vi.spyOn(store, 'close');
    const h = harness({ store, ownsStore: true });
    h.gates.courier = deferred();
    h.started.courier = deferred();
    h.compensationGate = deferred();
    const answer = h.submit({ id: 'c-1', amount: 1, failStep: 'courier' });
    await h.started.courier.promise;
    await flushMicrotasks();

    const closed = h.ledger.close();
    expect(await promiseState(closed), 'while the order runs').toBe('pending');
    h.gates.courier.resolve();
    expect(kindOf(await answer), 'answer').toBe('no_courier');
    expect(await promiseState(closed), 'while its compensations run').toBe('pending');
    expect(closeStore, 'store closed early').not.toHaveBeenCalled();
    h.compensationGate.resolve();
    await closed;
    expect(h.undone, 'undone before the close').toEqual(['vendor', 'payment']);
    expect(closeStore, 'store closed').toHaveBeenCalledOnce();
  });

  it('leaves a store it does not own open', async () => {
    const store = new MemoryOrderStore();
    const closeStore = vi.spyOn(store, 'close');
    await harness({ store, ownsStore: false }).ledger.close();
    expect(closeStore).not.toHaveBeenCalled();
  });

  it('stops the background sweep', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const h = harness();
    await h.ledger.start();
    expect(vi.getTimerCount(), 'the next sweep is scheduled').toBe(1);
    await h.ledger.close();
    expect(vi.getTimerCount(), 'after close').toBe(0);
  });
});
