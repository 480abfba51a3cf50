import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { Semaphore } from '../../src/core/semaphore.js';
import { Tracker } from '../../src/core/tracker.js';
import { buildApp } from '../../src/http/app.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import { Pipeline, type OrderOutcome } from '../../src/order/pipeline.js';
import type { Step } from '../../src/order/step.js';
import {
  capturingLogger,
  deferred,
  flushMicrotasks,
  runWithDeadline,
  testService,
} from '../helpers.js';

type TestOrder = { id: string };

/** A step that resolves once its cancellation aborts: a well-behaved sibling. */
const stopsOnAbort = (name: string): Step<TestOrder> => ({
  name,
  run: (_order, cancel) =>
    new Promise((_resolve, reject) => {
      if (cancel.aborted) reject(cancel.reason);
      else cancel.onAbort(reject);
    }),
});

const declines: Step<TestOrder> = {
  name: 'payment',
  run: () => Promise.reject(new OrderError('payment_declined', 'payment was declined')),
};

describe('a step that breaks the contract is reported internal and the order still answers', () => {
  it.each<{ what: string; run: Step<TestOrder>['run'] }>([
    {
      what: 'throws synchronously',
      run: () => {
        throw new Error('boom: secret detail');
      },
    },
    // Rejections with non-Error values are the point of these cases.
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    { what: 'rejects with a string', run: () => Promise.reject('declined?') },
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    { what: 'rejects with undefined', run: () => Promise.reject(undefined) },
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    { what: 'rejects with a plain object', run: () => Promise.reject({ code: 42 }) },
    { what: 'returns a number', run: () => 42 as unknown as Promise<unknown> },
    { what: 'returns undefined', run: () => undefined as unknown as Promise<unknown> },
  ])('a step that $what', async ({ run }) => {
    const tracker = new Tracker();
    const pipeline = new Pipeline<TestOrder>([{ name: 'bad', run }, stopsOnAbort('other')], {
      tracker,
      abandonGraceMs: 1000,
    });
    const outcome = await pipeline.run({ id: 'o' });
    expect(
      outcome.error,
      'got a different error, want internal with a fixed message',
    ).toMatchObject({ kind: 'internal', message: 'internal error' });
    expect(outcome.steps.map((step) => [step.name, step.status, step.detail])).toEqual([
      ['bad', 'error', 'internal'],
      ['other', 'canceled', undefined],
    ]);
    expect([tracker.active, tracker.abandoned]).toEqual([0, 0]);
  });

  it('over HTTP: 500 internal, no internal message leaked; the cause is logged with the order id', async () => {
    const logged: { details: object; message: string }[] = [];
    const log = (details: object, message: string): void => {
      logged.push({ details, message });
    };
    const service = testService({
      requestTimeoutMs: 1000,
      logger: { info: log, warn: log, error: log },
      steps: () => [
        {
          name: 'payment',
          run: () => {
            throw new TypeError('db password is hunter2');
          },
        },
      ],
    });
    const app = buildApp({ service });
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      payload: { order_id: 'x', amount: 1 },
    });
    await app.close();
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('hunter2');
    expect(response.json()).toMatchObject({
      status: 'error',
      error: { kind: 'internal', message: 'internal error' },
      steps: [{ name: 'payment', status: 'error', detail: 'internal' }],
    });
    const line = logged.find((entry) => entry.message === 'a step failed unexpectedly');
    expect(line?.details).toMatchObject({ order_id: 'x' });
    expect(String((line?.details as { err?: unknown }).err)).toContain('hunter2');
  });

  it('keeps the cause on the outcome for library users', async () => {
    const cause = new TypeError('db password is hunter2');
    const pipeline = new Pipeline([{ name: 'payment', run: () => Promise.reject(cause) }]);
    const outcome = await pipeline.run({});
    expect(outcome.error).toStrictEqual({ kind: 'internal', message: 'internal error' });
    expect(outcome.error?.cause).toBe(cause);
    expect(JSON.stringify(outcome)).not.toContain('hunter2');
  });
});

describe('a step that ignores cancellation', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A vendor step that ignores the abort and settles only when the test says so. */
  function stubbornVendor() {
    const settle = deferred();
    let started = 0;
    const step: Step<TestOrder> = {
      name: 'vendor',
      run: () => {
        started++;
        return settle.promise;
      },
    };
    return { step, settle, started: () => started };
  }

  it('is abandoned after the grace period: the order answers, the step is marked abandoned, the tracker counts it until it settles', async () => {
    const vendor = stubbornVendor();
    const tracker = new Tracker();
    let clock = 0;
    const pipeline = new Pipeline<TestOrder>([declines, vendor.step], {
      tracker,
      abandonGraceMs: 1000,
      now: () => clock,
    });
    let outcome: OrderOutcome | undefined;
    void pipeline.run({ id: 'o' }).then((value) => (outcome = value));
    await flushMicrotasks();
    expect(vi.getTimerCount(), 'one grace timer after the abort').toBe(1);

    clock = 999;
    await vi.advanceTimersByTimeAsync(999);
    expect(outcome, 'answered before the grace period ended').toBeUndefined();

    clock = 1000;
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome).toEqual({
      status: 'error',
      error: { kind: 'payment_declined', message: 'payment was declined' },
      steps: [
        { name: 'payment', status: 'error', detail: 'payment_declined', durationMs: 0 },
        { name: 'vendor', status: 'abandoned', durationMs: 1000 },
      ],
    });
    expect([tracker.active, tracker.abandoned], 'still running, counted abandoned').toEqual([1, 1]);

    // It settles late, with a rejection: the answer does not change, nothing is unhandled.
    const answered = structuredClone(outcome);
    clock = 5000;
    vendor.settle.reject(new Error('late failure'));
    await flushMicrotasks();
    expect(outcome).toEqual(answered);
    expect([tracker.active, tracker.abandoned], 'settled: nothing left').toEqual([0, 0]);
    expect(vi.getTimerCount(), 'no timer left').toBe(0);
  });

  it('a step that settles after the answer with success changes nothing either', async () => {
    const vendor = stubbornVendor();
    const tracker = new Tracker();
    const pipeline = new Pipeline<TestOrder>([declines, vendor.step], {
      tracker,
      abandonGraceMs: 10,
    });
    const running = pipeline.run({ id: 'o' });
    await vi.advanceTimersByTimeAsync(10);
    const outcome = await running;
    const answered = structuredClone(outcome);
    vendor.settle.resolve();
    await flushMicrotasks();
    expect(outcome).toEqual(answered);
    expect(outcome.steps[1]?.status).toBe('abandoned');
    expect([tracker.active, tracker.abandoned]).toEqual([0, 0]);
  });

  it.each([
    { cause: 'the deadline', kind: 'timeout', clientLeaves: false },
    { cause: 'the client', kind: 'canceled', clientLeaves: true },
  ])('$cause aborting starts the grace period too', async ({ kind, clientLeaves }) => {
    const vendor = stubbornVendor();
    const pipeline = new Pipeline<TestOrder>([stopsOnAbort('payment'), vendor.step], {
      abandonGraceMs: 100,
    });
    const client = new CancelSource();
    const running = runWithDeadline(pipeline, { id: 'o' }, 50, client);
    if (clientLeaves) client.abort(new OrderError('canceled', 'client went away'));
    await vi.advanceTimersByTimeAsync(150);
    const outcome = await running;
    expect(outcome.error?.kind).toBe(kind);
    expect(outcome.steps.map((step) => step.status)).toEqual(['canceled', 'abandoned']);
    vendor.settle.resolve();
  });

  it('an order aborted before it starts still answers after the grace period', async () => {
    const vendor = stubbornVendor();
    const parent = new CancelSource();
    parent.abort(new OrderError('canceled', 'gone'));
    const pipeline = new Pipeline<TestOrder>([vendor.step], { abandonGraceMs: 20 });
    const running = pipeline.run({ id: 'o' }, { parent });
    await vi.advanceTimersByTimeAsync(20);
    expect((await running).steps[0]?.status).toBe('abandoned');
    vendor.settle.resolve();
  });

  it('no timer is started for an order that is not aborted, nor for one whose steps stop promptly', async () => {
    const gate = deferred();
    const pipeline = new Pipeline<TestOrder>(
      [{ name: 'a', run: () => gate.promise }, stopsOnAbort('b')],
      { abandonGraceMs: 1000 },
    );
    const parent = new CancelSource();
    const running = pipeline.run({ id: 'o' }, { parent });
    await flushMicrotasks();
    expect(vi.getTimerCount(), 'happy path: no timer').toBe(0);
    gate.resolve();
    parent.abort(new OrderError('canceled', 'gone'));
    await running;
    expect(vi.getTimerCount()).toBe(0);
  });

  it('without abandonGraceMs the pipeline waits for the step however long it takes', async () => {
    const vendor = stubbornVendor();
    const pipeline = new Pipeline<TestOrder>([declines, vendor.step]);
    let answered = false;
    const running = pipeline.run({ id: 'o' }).then(() => (answered = true));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(answered).toBe(false);
    vendor.settle.resolve();
    await running;
  });

  it.each([-1, Number.NaN, Infinity])('rejects abandonGraceMs %s', (abandonGraceMs) => {
    expect(() => new Pipeline([declines], { abandonGraceMs })).toThrow(RangeError);
  });

  it('an abandoned courier step keeps its pool slot until it settles, visibly, and the slot then comes back', async () => {
    const courierPool = new Semaphore(1);
    const settle = deferred();
    const tracker = new Tracker();
    const courier: Step<TestOrder> = {
      name: 'courier',
      run: async () => {
        const permit = await courierPool.acquire();
        try {
          await settle.promise; // ignores the abort
        } finally {
          permit.release();
        }
      },
    };
    const pipeline = new Pipeline<TestOrder>([declines, courier], { tracker, abandonGraceMs: 5 });
    const running = pipeline.run({ id: 'o' });
    await vi.advanceTimersByTimeAsync(5);
    expect((await running).steps[1]?.status).toBe('abandoned');
    expect([courierPool.inUse, tracker.abandoned], 'slot held, visibly').toEqual([1, 1]);
    settle.resolve();
    await flushMicrotasks();
    expect([courierPool.inUse, tracker.abandoned, tracker.active]).toEqual([0, 0, 0]);
  });
});

describe('abandoned steps over HTTP', () => {
  it('are reported in the response and logged at warn', async () => {
    const { logger, lines } = capturingLogger();
    const settle = deferred();
    const service = testService({
      requestTimeoutMs: 1000,
      abandonGraceMs: 5,
      steps: (): Step<Order>[] => [
        {
          name: 'payment',
          run: () => Promise.reject(new OrderError('payment_declined', 'payment was declined')),
        },
        { name: 'vendor', run: () => settle.promise },
      ],
    });
    const app = buildApp({ service, logger });
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      payload: { order_id: 'stuck', amount: 1 },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json<{ steps: { status: string }[] }>().steps.map((s) => s.status)).toEqual([
      'error',
      'abandoned',
    ]);
    expect(service.tracker.abandoned).toBe(1);
    expect(lines.find((line) => line.msg.includes('abandoned'))?.['abandoned']).toEqual(['vendor']);
    settle.resolve();
    await flushMicrotasks();
    expect(service.tracker.abandoned).toBe(0);
    await app.close();
  });
});
