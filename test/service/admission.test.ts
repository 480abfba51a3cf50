import type { LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { Semaphore } from '../../src/core/semaphore.js';
import { sleep } from '../../src/core/sleep.js';
import { Admission, type Admitted, type Refused } from '../../src/service/admission.js';
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

describe('Admission', () => {
  it.each([0, 1.5, -1, Number.NaN])('rejects a maxInflightOrders of %s', (maxInflightOrders) => {
    expect(() => new Admission({ expectedWaitMs: () => 0, maxInflightOrders })).toThrow(RangeError);
  });

  it('refuses with overloaded once the orders in flight reach the limit, and admits again after a release', () => {
    const admission = new Admission({ expectedWaitMs: () => 0, maxInflightOrders: 2 });
    const first = admission.admit(1000);
    const second = admission.admit(1000);
    const third = admission.admit(1000);
    expect([first.admitted, second.admitted, third.admitted]).toEqual([true, true, false]);
    expect(refusalKind(third)).toBe('overloaded');
    expect(admission.inflight, 'a refusal takes no place').toBe(2);
    if (first.admitted) first.release();
    expect(admission.admit(1000).admitted).toBe(true);
  });

  it.each([
    { expectedWaitMs: 0, remainingMs: 1, admitted: true },
    { expectedWaitMs: 499, remainingMs: 1000, admitted: true },
    { expectedWaitMs: 500, remainingMs: 1000, admitted: true },
    { expectedWaitMs: 501, remainingMs: 1000, admitted: false },
    { expectedWaitMs: 10, remainingMs: 0, admitted: false },
    { expectedWaitMs: 10, remainingMs: -5, admitted: false },
  ])(
    'expected $expectedWaitMs ms with $remainingMs ms left: admitted $admitted',
    ({ expectedWaitMs, remainingMs, admitted }) => {
      const admission = new Admission({
        expectedWaitMs: () => expectedWaitMs,
        maxInflightOrders: 10,
      });
      const result = admission.admit(remainingMs);
      expect(result.admitted, `got ${refusalKind(result) ?? 'admitted'}`).toBe(admitted);
      if (!admitted) expect(refusalKind(result)).toBe('overloaded');
      expect(admission.refused.overloaded).toBe(admitted ? 0 : 1);
    },
  );

  it.each([
    { overloadedWaitMs: -1 },
    { overloadedWaitMs: Number.NaN },
    { overloadWindowMs: Infinity },
  ])('rejects %o', (limits) => {
    expect(
      () => new Admission({ expectedWaitMs: () => 0, maxInflightOrders: 1, ...limits }),
    ).toThrow(RangeError);
  });

  describe('once overloaded', () => {
    /** admission with a clock the test moves and an expected wait the test sets. */
    function overloadable(): {
      admission: Admission;
      admits: (waitMs: number) => boolean;
      advance: (ms: number) => void;
    } {
      let now = 1000;
      let waitMs = 0;
      const admission = new Admission({
        expectedWaitMs: () => waitMs,
        maxInflightOrders: 1000,
        overloadedWaitMs: 100,
        overloadWindowMs: 1000,
        now: () => now,
      });
      return {
        admission,
        admits: (wait) => {
          waitMs = wait;
          return admission.admit(2000).admitted;
        },
        advance: (ms) => {
          now += ms;
        },
      };
    }

    it('caps the wait admitted until a window passes with no refusal', () => {
      const { admission, admits, advance } = overloadable();
      expect(admits(900), 'under half of 2000 ms').toBe(true);
      expect(admission.overloaded).toBe(false);
      expect(admits(1001), 'over half of 2000 ms').toBe(false);
      expect(admission.overloaded).toBe(true);
      expect(admits(101), 'over the cap').toBe(false);
      expect(admits(100), 'at the cap').toBe(true);
      // The refusal of 101 ms restarted the window.
      advance(999);
      expect(admits(900)).toBe(false);
      advance(999);
      expect(admission.overloaded).toBe(true);
      advance(1);
      expect(admission.overloaded).toBe(false);
      expect(admits(900), 'a window with no refusal: the full limit again').toBe(true);
      expect(admission.refused.overloaded).toBe(3);
    });

    it('a standing queue that refuses nothing keeps the full limit', () => {
      const { admission, admits, advance } = overloadable();
      for (let i = 0; i < 50; i++) {
        expect(admits(900)).toBe(true);
        advance(100);
      }
      expect(admission.overloaded).toBe(false);
    });

    it('a refusal at the in-flight bound counts as overload too', () => {
      const admission = new Admission({
        expectedWaitMs: () => 300,
        maxInflightOrders: 1,
        now: () => 0,
      });
      expect(admission.admit(2000).admitted).toBe(true);
      expect(admission.admit(2000).admitted).toBe(false);
      expect(admission.overloaded).toBe(true);
    });

    it('the cap never raises the deadline limit', () => {
      const admission = new Admission({
        expectedWaitMs: () => 60,
        maxInflightOrders: 10,
        overloadedWaitMs: 100,
        now: () => 0,
      });
      expect(admission.admit(100).admitted, '60 ms over half of 100 ms').toBe(false);
      expect(admission.overloaded).toBe(true);
      // Overloaded, 100 ms is the cap; half of the 100 ms left (50 ms) is still the limit.
      expect(admission.admit(100).admitted).toBe(false);
      expect(admission.admit(2000).admitted, 'under the cap').toBe(true);
    });
  });

  it('releasing a place twice throws and does not free a second place', () => {
    const admission = new Admission({ expectedWaitMs: () => 0, maxInflightOrders: 1 });
    const place = admission.admit(1000);
    if (!place.admitted) throw new Error('want admitted');
    place.release();
    expect(() => {
      place.release();
    }).toThrow(/twice/);
    expect(admission.inflight).toBe(0);
  });

  it('close refuses with shutting_down, drained resolves when the last order is released, abortInflight aborts the cancellation', async () => {
    const admission = new Admission({ expectedWaitMs: () => 0, maxInflightOrders: 10 });
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

describe('MeasuredPool', () => {
  it('estimates the wait from the mean hold: 0 while a slot is free, then (waiting + 1) / size holds', async () => {
    let clock = 0;
    const pool = new MeasuredPool(new Semaphore(2), () => clock);
    expect(pool.expectedWaitMs()).toBe(0);
    const a = await pool.acquire();
    clock = 10;
    a.release();
    expect(pool.meanHoldMs).toBe(10);
    const held = [await pool.acquire(), await pool.acquire()];
    expect(pool.expectedWaitMs(), 'all slots held, nobody waiting').toBe(5);
    const queued = [pool.acquire(), pool.acquire(), pool.acquire()];
    expect(pool.waiting).toBe(3);
    expect(pool.expectedWaitMs(), '4th in line for 2 slots of 10 ms').toBe(20);
    for (const permit of held) permit.release();
    for (const permit of await Promise.all(queued.slice(0, 2))) permit.release();
    (await queued[2])?.release();
    expect([pool.inUse, pool.waiting]).toEqual([0, 0]);
  });

  it('releasing a permit twice throws, as the pool it wraps does', async () => {
    const pool = new MeasuredPool(new Semaphore(1));
    const permit = await pool.acquire();
    permit.release();
    expect(() => {
      permit.release();
    }).toThrow();
    expect(pool.inUse).toBe(0);
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
    // A courier is known to hold its slot until its order's 200 ms deadline: longer than
    // half that deadline, the wait admission accepts.
    const warm = await answer(app.inject(courier('warm')));
    expect([warm.statusCode, warm.ms], 'warm: status, ms').toEqual([504, 200]);
    expect(service.courierPool.meanHoldMs, 'mean hold').toBe(200);
    slotTaken = deferred();
    const holding = app.inject(courier('holds-slot'));
    await slotTaken.promise;
    const paymentsBefore = payments;

    // Waiting 200 ms for the slot: past half its 200 ms deadline. Refused at once.
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
