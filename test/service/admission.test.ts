import type { LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { Semaphore } from '../../src/core/semaphore.js';
import { sleep } from '../../src/core/sleep.js';
import {
  Admission,
  type AdmissionOptions,
  type Admitted,
  type Refused,
} from '../../src/service/admission.js';
import { MeasuredPool } from '../../src/service/measured-pool.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import {
  buildTestApp,
  deferred,
  flushMicrotasks,
  type Deferred,
  type TestApp,
} from '../helpers.js';
import { settledAfterMs } from '../http/support.js';

/** refusalKind is the kind of a refusal, or undefined for an admitted order. */
function refusalKind(result: Admitted | Refused): string | undefined {
  return result.admitted ? undefined : result.answer.error?.kind;
}

/** admissionWith builds an admission over a free pool of 4 with the default limits, and `limits`. */
function admissionWith(limits: Partial<AdmissionOptions> = {}): Admission {
  return new Admission({
    courierPool: new MeasuredPool(new Semaphore(4)),
    storeBacklogMs: () => 0,
    maxInflightOrders: 10,
    retryAfterSeconds: 1,
    overloadWaitMs: 50,
    overloadWindowMs: 1000,
    ...limits,
  });
}

// The rule itself (the queue ahead, the prediction, the margin, the standing-queue cap) is
// tested in admission-rule.test.ts; the estimate against an oracle in admission-oracle.test.ts.
describe('Admission', () => {
  it.each([0, 1.5, -1, Number.NaN])('rejects a maxInflightOrders of %s', (maxInflightOrders) => {
    expect(() => admissionWith({ maxInflightOrders })).toThrow(RangeError);
  });

  it.each([
    { overloadWaitMs: -1 },
    { overloadWaitMs: Number.NaN },
    { overloadWindowMs: Infinity },
    { retryAfterSeconds: 0 },
  ])('rejects %o', (limits) => {
    expect(() => admissionWith(limits)).toThrow(RangeError);
  });

  it('releasing a place twice throws and does not free a second place', () => {
    const admission = admissionWith({ maxInflightOrders: 1 });
    const place = admission.admit(1000);
    if (!place.admitted) throw new Error('want admitted');
    place.release();
    expect(() => {
      place.release();
    }).toThrow(/twice/);
    expect(admission.inflight).toBe(0);
  });

  it('close refuses with shutting_down, drained resolves when the last order is released, abortInflight aborts the cancellation', async () => {
    const admission = admissionWith();
    const place = admission.admit(1000);
    admission.close();
    const refused = admission.admit(1000);
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

  /**
   * Steps that record their starts and wait on a gate; `allStarted` resolves once the steps
   * of `count` orders have all started.
   */
  function gatedSteps() {
    const gate = deferred();
    const started: string[] = [];
    const names = ['payment', 'vendor', 'courier'];
    const waiting: { count: number; started: Deferred<void> }[] = [];
    const allStarted = (count: number): Promise<void> => {
      const entry = { count, started: deferred() };
      waiting.push(entry);
      return entry.started.promise;
    };
    const steps = (): Step<Order>[] =>
      names.map((name) => ({
        name,
        run: async (order: Order) => {
          started.push(`${order.id}:${name}`);
          for (const entry of waiting) {
            if (started.length === entry.count * names.length) entry.started.resolve();
          }
          await gate.promise;
        },
      }));
    return { gate, started, steps, allStarted };
  }

  const order = (id: string) => ({
    method: 'POST' as const,
    url: '/order',
    payload: { order_id: id, amount: 1 },
  });

  it('refuses an order beyond MAX_INFLIGHT_ORDERS with 503 overloaded and Retry-After, before any step starts, and leaves the orders in flight alone', async () => {
    const { gate, started, steps, allStarted } = gatedSteps();
    testApp = buildTestApp({ steps, maxInflightOrders: 2 });
    const { app, service } = testApp;
    const inFlight = [app.inject(order('a')), app.inject(order('b'))];
    await allStarted(2);
    expect(service.admission.inflight, 'orders admitted').toBe(2);
    const startsBefore = started.length;

    const refused = await app.inject(order('c'));
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json()).toEqual({
      status: 'error',
      order_id: 'c',
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
    expect(service.admission.inflight).toBe(0);
    expect((await app.inject(order('d'))).statusCode, 'admitted again').toBe(200);
  });

  it('refuses an order that could not get a courier before its deadline, without attempting payment', async () => {
    // The pool's hold times, the deadlines and admission all read the fake clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    let payments = 0;
    let slotTaken = deferred();
    testApp = buildTestApp({
      courierPoolSize: 1,
      requestTimeoutMs: 200,
      // Payment is instant and counted; the courier holds its slot for its delay.
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
          run: async (order, cancel) => {
            const permit = await courierPool.acquire(cancel);
            slotTaken.resolve();
            try {
              await sleep(order.delayMs?.courier ?? 0, cancel);
            } finally {
              permit.release();
            }
          },
        },
      ],
    });
    const { app, service } = testApp;
    const courier = (id: string, courierMs = 1000) => ({
      ...order(id),
      payload: { order_id: id, amount: 1, delay_ms: { courier: courierMs } },
    });
    /** answer moves the clock until `response` comes; resolves with it and the ms it took. */
    const answer = async (response: Promise<LightMyRequestResponse>) => {
      const ms = await settledAfterMs(response);
      return { ms, ...(await response) };
    };
    // A courier is known to hold its slot until its order's 200 ms deadline: an order queued
    // behind one would wait 200 ms, then hold its own.
    const warm = await answer(app.inject(courier('warm')));
    expect([warm.statusCode, warm.ms], 'warm: status, ms').toEqual([504, 200]);
    expect(service.courierPool.meanHoldMs, 'mean hold').toBe(200);
    slotTaken = deferred();
    const holding = app.inject(courier('holds-slot'));
    await slotTaken.promise;
    const paymentsBefore = payments;

    // Waiting 200 ms for the slot, then holding it: past its 200 ms deadline. Refused at once.
    const refused = await answer(app.inject(courier('refused')));
    expect(refused.ms, 'refused after ms').toBe(0);
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json<{ error: { kind: string } }>().error.kind).toBe('overloaded');
    expect(payments, 'no payment attempted for the refused order').toBe(paymentsBefore);
    expect(service.courierPool.waiting, 'nothing queued').toBe(0);

    const held = await answer(holding);
    expect([held.statusCode, held.ms], 'holds-slot: status, ms').toEqual([504, 200]);
    // With the slot free again, the order fits its deadline.
    const fits = await answer(app.inject(courier('fits', 10)));
    expect([fits.statusCode, fits.ms], 'fits: status, ms').toEqual([200, 10]);
    expect([service.courierPool.inUse, service.tracker.active]).toEqual([0, 0]);
  });

  it('after close(), POST /order answers 503 shutting_down and /readyz 503 while /healthz stays 200', async () => {
    testApp = buildTestApp({ delays: { payment: 0, vendor: 0, courier: 0 } });
    const { app, service } = testApp;
    expect((await app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready' });
    service.admission.close();
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
