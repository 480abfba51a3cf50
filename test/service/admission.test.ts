import { afterEach, describe, expect, it } from 'vitest';
import { Semaphore } from '../../src/core/semaphore.js';
import { Admission, type Admitted, type Refused } from '../../src/order/admission.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import { buildTestApp, deferred, flushMicrotasks, type TestApp } from '../helpers.js';
import { waitFor } from '../http/support.js';

/** refusalKind is the kind of a refusal, or undefined for an admitted order. */
function refusalKind(result: Admitted | Refused): string | undefined {
  return result.admitted ? undefined : result.error.kind;
}

describe('Admission', () => {
  it.each([
    { maxInflightOrders: 0, courierQueueLimit: 1 },
    { maxInflightOrders: 1.5, courierQueueLimit: 1 },
    { maxInflightOrders: 1, courierQueueLimit: -1 },
    { maxInflightOrders: 1, courierQueueLimit: Number.NaN },
  ])('rejects limits $maxInflightOrders / $courierQueueLimit', (limits) => {
    expect(() => new Admission({ courierPool: new Semaphore(1), ...limits })).toThrow(RangeError);
  });

  it('refuses with overloaded once the orders in flight reach the limit, and admits again after a release', () => {
    const admission = new Admission({
      courierPool: new Semaphore(1),
      maxInflightOrders: 2,
      courierQueueLimit: Infinity,
    });
    const first = admission.admit();
    const second = admission.admit();
    const third = admission.admit();
    expect([first.admitted, second.admitted, third.admitted]).toEqual([true, true, false]);
    expect(refusalKind(third)).toBe('overloaded');
    expect(admission.inflight, 'a refusal takes no place').toBe(2);
    if (first.admitted) first.release();
    expect(admission.admit().admitted).toBe(true);
  });

  it('refuses with overloaded once the courier queue reaches its limit', async () => {
    const courierPool = new Semaphore(1);
    const admission = new Admission({ courierPool, maxInflightOrders: 100, courierQueueLimit: 1 });
    const held = await courierPool.acquire();
    const queued = courierPool.acquire();
    expect(courierPool.waiting).toBe(1);
    const refused = admission.admit();
    expect(refusalKind(refused), 'got admitted, want overloaded').toBe('overloaded');
    held.release();
    (await queued).release();
    expect(admission.admit().admitted, 'queue empty again').toBe(true);
  });

  it('a queue limit of 0 admits only while a courier slot is free', async () => {
    const courierPool = new Semaphore(1);
    const admission = new Admission({ courierPool, maxInflightOrders: 10, courierQueueLimit: 0 });
    expect(admission.admit().admitted, 'slot free').toBe(true);
    const held = await courierPool.acquire();
    expect(admission.admit().admitted, 'slot taken: the order would have to wait').toBe(false);
    held.release();
    expect(admission.admit().admitted, 'slot free again').toBe(true);
  });

  it('releasing a place twice throws and does not free a second place', () => {
    const admission = new Admission({
      courierPool: new Semaphore(1),
      maxInflightOrders: 1,
      courierQueueLimit: 1,
    });
    const place = admission.admit();
    if (!place.admitted) throw new Error('want admitted');
    place.release();
    expect(() => {
      place.release();
    }).toThrow(/twice/);
    expect(admission.inflight).toBe(0);
  });

  it('close refuses with shutting_down, drained resolves when the last order is released, abortInflight aborts the cancellation', async () => {
    const admission = new Admission({
      courierPool: new Semaphore(1),
      maxInflightOrders: 10,
      courierQueueLimit: 10,
    });
    const place = admission.admit();
    admission.close();
    const refused = admission.admit();
    expect(refusalKind(refused)).toBe('shutting_down');
    let drained = false;
    const done = admission.drained().then(() => (drained = true));
    await flushMicrotasks();
    expect(drained, 'drained before the order was released').toBe(false);
    admission.abortInflight();
    expect(admission.cancellation.aborted).toBe(true);
    expect((admission.cancellation.reason as OrderError).kind).toBe('shutting_down');
    if (place.admitted) place.release();
    await done;
    await admission.drained(); // already idle: resolves at once
  });
});

describe('POST /order under admission control', () => {
  let testApp: TestApp | undefined;
  afterEach(async () => {
    await testApp?.app.close();
    testApp = undefined;
  });

  /** Steps that count their starts and wait on a gate, with a one-slot courier pool. */
  function gatedSteps() {
    const gate = deferred();
    const started: string[] = [];
    const steps = (): Step<Order>[] =>
      ['payment', 'vendor', 'courier'].map((name) => ({
        name,
        run: async (order: Order) => {
          started.push(`${order.id}:${name}`);
          await gate.promise;
        },
      }));
    return { gate, started, steps };
  }

  const order = (id: string) => ({
    method: 'POST' as const,
    url: '/order',
    payload: { order_id: id, amount: 1 },
  });

  it('refuses an order beyond MAX_INFLIGHT_ORDERS with 503 overloaded and Retry-After, before any step starts, and leaves the orders in flight alone', async () => {
    const { gate, started, steps } = gatedSteps();
    testApp = buildTestApp({ steps, maxInflightOrders: 2 });
    const { app, service } = testApp;
    const inFlight = [app.inject(order('a')), app.inject(order('b'))];
    await waitFor('both orders admitted', () => service.admission?.inflight === 2);
    const startsBefore = started.length;

    const refused = await app.inject(order('c'));
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json()).toEqual({
      status: 'error',
      error: { kind: 'overloaded', message: 'the service is overloaded, retry later' },
    });
    expect(started.length, 'no step of the refused order ran').toBe(startsBefore);
    expect(started.some((entry) => entry.startsWith('c:'))).toBe(false);

    gate.resolve();
    const answers = await Promise.all(inFlight);
    expect(
      answers.map((answer) => answer.statusCode),
      'in-flight orders undisturbed',
    ).toEqual([200, 200]);
    expect(service.admission?.inflight).toBe(0);
    expect((await app.inject(order('d'))).statusCode, 'admitted again').toBe(200);
  });

  it('refuses an order when the courier queue is full, without attempting payment', async () => {
    let payments = 0;
    testApp = buildTestApp({
      courierPoolSize: 1,
      courierQueueLimit: 1,
      // Payment is instant and counted; the courier step holds its slot for 60 s.
      steps: (courierPool) => [
        {
          name: 'payment',
          run: () => {
            payments++;
            return Promise.resolve();
          },
        },
        {
          name: 'courier',
          run: async (_order, cancel) => {
            const permit = await courierPool.acquire(cancel);
            try {
              await new Promise((_resolve, reject) => {
                cancel.onAbort(reject);
              });
            } finally {
              permit.release();
            }
          },
        },
      ],
    });
    const { app, service } = testApp;
    const holding = app.inject(order('holds-slot'));
    const waiting = app.inject(order('waits'));
    await waitFor('one courier holding, one waiting', () => service.courierPool.waiting === 1);
    expect(service.courierPool.inUse).toBe(1);
    const paymentsBefore = payments;

    const refused = await app.inject(order('refused'));
    expect(refused.statusCode).toBe(503);
    expect(refused.json<{ error: { kind: string } }>().error.kind).toBe('overloaded');
    expect(payments, 'no payment attempted for the refused order').toBe(paymentsBefore);
    expect(service.courierPool.waiting, 'queue unchanged').toBe(1);

    // The drain deadline's abort stops both orders in flight: they answer shutting_down.
    service.admission?.abortInflight();
    const stopped = await Promise.all([holding, waiting]);
    expect(stopped.map((answer) => answer.json<{ error: { kind: string } }>().error.kind)).toEqual([
      'shutting_down',
      'shutting_down',
    ]);
    expect([
      service.courierPool.inUse,
      service.courierPool.waiting,
      service.tracker.active,
    ]).toEqual([0, 0, 0]);
  });

  it('after close(), POST /order answers 503 shutting_down and /readyz 503 while /healthz stays 200', async () => {
    testApp = buildTestApp({ delays: { payment: 0, vendor: 0, courier: 0 } });
    const { app, service } = testApp;
    expect((await app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready' });
    service.admission?.close();
    const readyz = await app.inject({ url: '/readyz' });
    expect(readyz.statusCode).toBe(503);
    expect(readyz.json<{ error: { kind: string } }>().error.kind).toBe('shutting_down');
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    const refused = await app.inject(order('late'));
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json<{ error: { kind: string } }>().error.kind).toBe('shutting_down');
  });
});
