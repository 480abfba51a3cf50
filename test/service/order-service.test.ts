import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CancelSource, type Cancellation } from '../../src/core/cancellation.js';
import { Semaphore } from '../../src/core/semaphore.js';
import type { OrderStore } from '../../src/ledger/order-store.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import type { OrderAnswer } from '../../src/service/order-answer.js';
import { ServiceUnavailable, type OrderService } from '../../src/service/order-service.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { openSqliteOrderStore } from '../../src/store/sqlite-order-store.js';
import { deferred, testService, type TestServiceOptions } from '../helpers.js';

// The service called directly, as the edge calls it: what each call answers, how it fails,
// and what it leaves behind.

const order: Order = { id: 'o1', amount: 100 };

let services: OrderService[] = [];

function service(options: TestServiceOptions = {}): OrderService {
  const made = testService(options);
  services.push(made);
  return made;
}

afterEach(async () => {
  for (const made of services) {
    await made.shutDown(0);
    await made.close();
  }
  services = [];
});

/** step is a step named `name` whose run is `run`. */
function step(name: string, run: Step<Order>['run']): Step<Order> {
  return { name, run };
}

/** untilAborted settles only when `cancel` aborts, rejecting with its reason. */
function untilAborted(_order: Order, cancel: Cancellation): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (cancel.aborted) reject(cancel.reason);
    cancel.onAbort(reject);
  });
}

/** storeWith is a memory store with the methods of `overrides` in place of its own. */
function storeWith(overrides: Partial<Record<keyof OrderStore, unknown>>): OrderStore {
  const store = new MemoryOrderStore();
  return new Proxy(store, {
    get(target, property, receiver): unknown {
      if (property in overrides) return overrides[property as keyof OrderStore];
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value.bind(target) as unknown) : value;
    },
  });
}

/** failingStore is a memory store whose `methods` reject with a store error. */
function failingStore(...methods: (keyof OrderStore)[]): OrderStore {
  const fail = (): Promise<never> =>
    Promise.reject(new Error('connection refused (internal detail)'));
  return storeWith(Object.fromEntries(methods.map((method) => [method, fail])));
}

const instant = { payment: 0, vendor: 0, courier: 0 };

describe('OrderService.submit', () => {
  it('answers an order that ran with its outcome, every step in registration order', async () => {
    const answer = await service({ delays: instant }).submit({ order });
    expect(answer.replayed).toBe(false);
    expect(answer.error).toBeUndefined();
    expect(answer.outcome?.status).toBe('ok');
    expect(answer.outcome?.steps.map((s) => [s.name, s.status])).toStrictEqual([
      ['payment', 'ok'],
      ['vendor', 'ok'],
      ['courier', 'ok'],
    ]);
  });

  it('replays a keyed repeat from the record, and refuses the key with another body', async () => {
    const made = service({ delays: instant });
    const body = { order_id: 'o1', amount: 100 };
    const first = await made.submit({ order, idempotencyKey: 'k1', body });
    const repeat = await made.submit({ order, idempotencyKey: 'k1', body });
    expect(repeat).toStrictEqual({ ...first, replayed: true });
    const conflict = await made.submit({
      order,
      idempotencyKey: 'k1',
      body: { ...body, amount: 101 },
    });
    expect(conflict.outcome).toBeUndefined();
    expect(conflict.error?.kind).toBe('idempotency_conflict');
  });

  it('answers timeout at the deadline and aborts the steps still running', async () => {
    const aborted = deferred<unknown>();
    const made = service({
      requestTimeoutMs: 50,
      steps: () => [
        step('payment', async (_order, cancel) => {
          cancel.onAbort(() => {
            aborted.resolve(cancel.reason);
          });
          return untilAborted(_order, cancel);
        }),
      ],
    });
    const answer = await made.submit({ order });
    expect(answer.error).toStrictEqual({
      kind: 'timeout',
      message: 'order did not complete within 50 ms',
    });
    expect(answer.outcome?.steps).toMatchObject([{ name: 'payment', status: 'canceled' }]);
    expect(await aborted.promise).toBeInstanceOf(OrderError);
    expect(made.load().stepsInFlight).toBe(0);
  });

  it('answers timeout after the slack when the store cannot record the outcome in time', async () => {
    const finishing = deferred<boolean>();
    const stalled = storeWith({ finish: () => finishing.promise });
    const made = service({
      store: stalled,
      requestTimeoutMs: 30,
      answerSlackMs: 5,
      delays: instant,
    });
    const answer = await made.submit({ order });
    expect(answer.error?.kind).toBe('timeout');
    expect(answer.outcome?.steps.map((s) => s.status)).toStrictEqual([
      'canceled',
      'canceled',
      'canceled',
    ]);
    finishing.resolve(true);
  });

  it('answers canceled when the client goes away, and frees the courier slot', async () => {
    const client = new CancelSource();
    const started = deferred();
    const made = service({
      courierPoolSize: 1,
      steps: (pool) => [
        step('courier', async (_order, cancel) => {
          const permit = await pool.acquire(cancel);
          try {
            started.resolve();
            return await untilAborted(_order, cancel);
          } finally {
            permit.release();
          }
        }),
      ],
    });
    const answer = made.submit({ order, parent: client });
    await started.promise;
    expect(made.load().pool.inUse).toBe(1);
    client.abort(new OrderError('canceled', 'the client closed the connection'));
    expect((await answer).error?.kind).toBe('canceled');
    expect(made.load().pool).toStrictEqual({ size: 1, inUse: 0, waiting: 0 });
  });

  it('answers unavailable with Retry-After when the store fails, without its message', async () => {
    const answer = await service({ store: failingStore('begin'), retryAfterSeconds: 7 }).submit({
      order,
    });
    expect(answer).toStrictEqual({
      error: {
        kind: 'unavailable',
        message: 'a service the order needs is unavailable, retry later',
      },
      replayed: false,
      retryAfterSeconds: 7,
    } satisfies OrderAnswer);
  });

  it('tells when to retry an order a step found the service unable to serve', async () => {
    const made = service({
      retryAfterSeconds: 3,
      steps: () => [
        step('courier', () =>
          Promise.reject(new OrderError('unavailable', 'the courier pool is unavailable')),
        ),
      ],
    });
    const answer = await made.submit({ order });
    expect(answer.error?.kind).toBe('unavailable');
    expect(answer.retryAfterSeconds).toBe(3);
  });

  it('undoes a failed step whose effect may have happened, and only that one', async () => {
    const undone: string[] = [];
    const undoable = (name: string, run: Step<Order>['run']): Step<Order> => ({
      name,
      run,
      compensate: () => {
        undone.push(name);
        return Promise.resolve();
      },
    });
    const made = service({
      steps: () => [
        // Its request went unanswered: the upstream may have applied it.
        undoable('payment', () =>
          Promise.reject(
            new OrderError('unavailable', 'payment unavailable', { effectUnknown: true }),
          ),
        ),
        // Refused: nothing was applied.
        undoable('vendor', () =>
          Promise.reject(new OrderError('vendor_unavailable', 'vendor unavailable')),
        ),
      ],
    });
    const answer = await made.submit({ order });
    expect(answer.error?.kind).toMatch(/^(unavailable|vendor_unavailable)$/);
    await expect
      .poll(async () => (await made.recordedRun('o1'))?.compensations.map((c) => c.status))
      .toStrictEqual(['compensated', 'not_needed']);
    expect(undone).toStrictEqual(['payment']);
  });

  it('undoes a step whose effect may have happened when it rejects after a sibling failed', async () => {
    const undone: string[] = [];
    const made = service({
      steps: () => [
        {
          name: 'payment',
          // Stopped by the vendor's failure, it cannot tell whether its request was applied.
          run: (_order, cancel) =>
            new Promise((_resolve, reject) => {
              cancel.onAbort(() => {
                reject(new OrderError('unavailable', 'payment unknown', { effectUnknown: true }));
              });
            }),
          compensate: () => {
            undone.push('payment');
            return Promise.resolve();
          },
        },
        step('vendor', () =>
          Promise.reject(new OrderError('vendor_unavailable', 'vendor unavailable')),
        ),
      ],
    });
    const answer = await made.submit({ order });
    expect(answer.error?.kind).toBe('vendor_unavailable');
    expect(answer.outcome?.steps.map((s) => s.status)).toStrictEqual(['canceled', 'error']);
    await expect
      .poll(async () => (await made.recordedRun('o1'))?.compensations.map((c) => c.status))
      .toStrictEqual(['compensated', 'not_needed']);
    expect(undone).toStrictEqual(['payment']);
  });

  it.each(['memory', 'sqlite'] as const)(
    'hands what a step threw to its caller as the error cause, and records only the kind (%s)',
    async (storeKind) => {
      const secret = 'db password hunter2 at 10.0.0.7';
      const failure = new Error(secret);
      const dataDir = await mkdtemp(join(tmpdir(), 'order-service-cause-'));
      try {
        const made = service({
          store:
            storeKind === 'memory'
              ? new MemoryOrderStore()
              : await openSqliteOrderStore({ dataDir, sync: 'normal' }),
          ownsStore: true,
          steps: () => [step('payment', () => Promise.reject(failure))],
        });
        const body = { order_id: 'o1', amount: 100 };
        const answer = await made.submit({ order, idempotencyKey: 'k1', body });
        expect(answer.error).toStrictEqual({ kind: 'internal', message: 'internal error' });
        expect(answer.error?.cause).toBe(failure);
        // Not enumerable, like Error.cause: nothing that serializes the answer carries it.
        expect(Object.keys(answer.error ?? {})).toStrictEqual(['kind', 'message']);
        expect(JSON.stringify(answer)).not.toContain('hunter2');
        // The record has the kind and the fixed message only, and so has a replay of it.
        const recorded = await made.recordedRun('o1');
        expect(recorded?.outcome?.error).toStrictEqual({
          kind: 'internal',
          message: 'internal error',
        });
        expect(recorded?.outcome?.error).not.toHaveProperty('cause');
        const replay = await made.submit({ order, idempotencyKey: 'k1', body });
        expect(replay.replayed).toBe(true);
        expect(replay.error).not.toHaveProperty('cause');
        await made.close();
        // Nor is it anywhere in the durable store's files.
        for (const file of await readdir(dataDir)) {
          expect(await readFile(join(dataDir, file), 'latin1'), file).not.toContain('hunter2');
        }
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  );

  it('refuses overloaded beyond maxInflightOrders, with Retry-After, and records nothing', async () => {
    const release = deferred();
    const made = service({
      maxInflightOrders: 1,
      retryAfterSeconds: 2,
      steps: () => [step('payment', () => release.promise)],
    });
    const first = made.submit({ order });
    const refused = await made.submit({ order: { id: 'o2', amount: 1 } });
    expect(refused.error?.kind).toBe('overloaded');
    expect(refused.retryAfterSeconds).toBe(2);
    expect(await made.recordedRun('o2')).toBeUndefined();
    release.resolve();
    expect((await first).outcome?.status).toBe('ok');
  });
});

describe('OrderService.recordedRun and settleFlag', () => {
  it('reads the run as recorded, and undefined for an unknown order', async () => {
    const made = service({ delays: instant });
    await made.submit({ order });
    const run = await made.recordedRun('o1');
    expect(run).toMatchObject({ orderId: 'o1', state: 'finished', outcome: { status: 'ok' } });
    expect(await made.recordedRun('nope')).toBeUndefined();
  });

  it('rejects with ServiceUnavailable, carrying Retry-After, when the store fails', async () => {
    const made = service({ store: failingStore('get', 'settleFlag'), retryAfterSeconds: 4 });
    for (const call of [() => made.recordedRun('o1'), () => made.settleFlag('r1', 'payment')]) {
      const error: unknown = await call().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ServiceUnavailable);
      expect((error as ServiceUnavailable).retryAfterSeconds).toBe(4);
      expect((error as ServiceUnavailable).message).not.toContain('internal detail');
    }
  });

  it('settles nothing that is not flagged', async () => {
    expect(await service().settleFlag('no-such-run', 'payment')).toBe(false);
  });
});

describe('OrderService.readiness, load and shutDown', () => {
  it('is ready, unavailable while a dependency is down, shutting_down once draining', async () => {
    let poolUp = true;
    const made = service({ dependenciesReady: () => poolUp });
    expect(made.readiness()).toStrictEqual({ ready: true });
    poolUp = false;
    expect(made.readiness()).toMatchObject({ ready: false, kind: 'unavailable' });
    await made.shutDown(0);
    expect(made.readiness()).toMatchObject({ ready: false, kind: 'shutting_down' });
    expect((await made.submit({ order })).error?.kind).toBe('shutting_down');
  });

  it('drains: an order that finishes in time is not aborted', async () => {
    const release = deferred();
    const made = service({ steps: () => [step('payment', () => release.promise)] });
    const answer = made.submit({ order });
    const drained = made.shutDown(60_000);
    release.resolve();
    expect(await drained).toBe(0);
    expect((await answer).outcome?.status).toBe('ok');
  });

  it('aborts the orders still in flight at the drain deadline, and counts them', async () => {
    const made = service({ steps: () => [step('payment', untilAborted)] });
    const answers = [made.submit({ order }), made.submit({ order: { id: 'o2', amount: 1 } })];
    expect(made.load().ordersInFlight).toBe(2);
    expect(await made.shutDown(1)).toBe(2);
    for (const answer of await Promise.all(answers)) {
      expect(answer.error?.kind).toBe('shutting_down');
    }
    expect(made.load()).toMatchObject({ ordersInFlight: 0, stepsInFlight: 0 });
  });

  it('reports its load: the pool, steps and orders in flight, and refusals by reason', async () => {
    const made = service({ courierPool: new Semaphore(3), delays: instant });
    expect(made.load()).toStrictEqual({
      pool: { size: 3, inUse: 0, waiting: 0 },
      stepsInFlight: 0,
      ordersInFlight: 0,
      refused: { overloaded: 0, shutting_down: 0 },
    });
    await made.shutDown(0);
    await made.submit({ order });
    expect(made.load().refused).toStrictEqual({ overloaded: 0, shutting_down: 1 });
  });
});

describe('new OrderService', () => {
  it.each([
    ['requestTimeoutMs', 0],
    ['requestTimeoutMs', Number.NaN],
    ['answerSlackMs', -1],
    ['maxInflightOrders', 0],
    ['retryAfterSeconds', 0],
  ] as const)('throws a RangeError for %s = %d', (name, value) => {
    expect(() => testService({ [name]: value })).toThrow(RangeError);
  });
});
