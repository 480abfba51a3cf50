import { afterEach, describe, expect, it } from 'vitest';
import type { Cancellation } from '../../src/core/cancellation.js';
import { sleep } from '../../src/core/sleep.js';
import { buildApp, type App } from '../../src/http/app.js';
import { orderFromRecordedRequest } from '../../src/http/recorded-orders.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import { createOrderService, type OrderService } from '../../src/order/order-service.js';
import { retryDelayMs } from '../../src/order/saga.js';
import type { Step } from '../../src/order/step.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { OrderLedger, type OrderLedgerOptions } from '../../src/store/order-ledger.js';
import type { OrderStore } from '../../src/store/order-store.js';
import { deferred } from '../helpers.js';

interface Instance {
  app: App;
  ledger: OrderLedger;
  service: OrderService;
  store: OrderStore;
}

const opened: Instance[] = [];
afterEach(async () => {
  for (const { app, ledger } of opened.splice(0)) {
    await app.close();
    await ledger.close();
  }
});

/** instance builds the app with a ledger over `store` (a fresh memory store by default). */
function instance(
  options: {
    store?: OrderStore;
    steps?: () => Step<Order>[];
    ledger?: Partial<OrderLedgerOptions>;
    requestTimeoutMs?: number;
  } = {},
): Instance {
  const store = options.store ?? new MemoryOrderStore();
  const service = createOrderService({
    delays: { payment: 5, vendor: 5, courier: 5 },
    ...(options.steps === undefined ? {} : { steps: options.steps }),
  });
  const ledger = new OrderLedger({
    store,
    pipeline: service.pipeline,
    steps: service.steps ?? [],
    toOrder: orderFromRecordedRequest,
    compensationRetryBaseMs: 10,
    compensationMaxAttempts: 3,
    ...options.ledger,
  });
  const app = buildApp({ service, ledger, requestTimeoutMs: options.requestTimeoutMs ?? 2000 });
  const made = { app, ledger, service, store };
  opened.push(made);
  return made;
}

function post(app: App, body: object) {
  return app.inject({ method: 'POST', url: '/order', payload: body });
}

describe('idempotent submission', () => {
  it('a duplicate with the same body replays the recorded outcome and runs no step', async () => {
    const { app, service } = instance();
    const body = { order_id: 'o-1', amount: 100, fail_step: 'vendor' };
    const first = await post(app, body);
    const started = service.tracker.started;
    const second = await post(app, { fail_step: 'vendor', amount: 100, order_id: 'o-1' });
    expect(first.statusCode).toBe(503);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(second.statusCode).toBe(503);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toStrictEqual(first.json());
    expect(service.tracker.started).toBe(started);
  });

  it('the same order_id with another body is 422 idempotency_conflict', async () => {
    const { app } = instance();
    expect((await post(app, { order_id: 'o-2', amount: 100 })).statusCode).toBe(200);
    const conflict = await post(app, { order_id: 'o-2', amount: 101 });
    expect(conflict.statusCode).toBe(422);
    expect(conflict.json()).toStrictEqual({
      status: 'error',
      error: {
        kind: 'idempotency_conflict',
        message: 'order_id "o-2" was already used with a different request',
      },
    });
  });

  it('50 concurrent duplicates execute once; all get the same answer, 49 replayed', async () => {
    const { app, service } = instance();
    const body = { order_id: 'o-race', amount: 7, delay_ms: { payment: 20 } };
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(app, body)));
    expect(service.tracker.started).toBe(3);
    expect(answers.map((a) => a.statusCode)).toStrictEqual(Array(50).fill(200));
    const replayed = answers.filter((a) => a.headers['idempotent-replayed'] === 'true');
    expect(replayed).toHaveLength(49);
    for (const answer of answers) expect(answer.json()).toStrictEqual(answers[0]?.json());
  });

  it('a duplicate on another instance while the order runs gets 409 order_in_progress', async () => {
    const store = new MemoryOrderStore();
    const gate = deferred();
    const steps = (): Step<Order>[] => [{ name: 'payment', run: () => gate.promise }];
    const a = instance({ store, steps });
    const b = instance({ store, steps });
    const body = { order_id: 'o-3', amount: 1 };
    const running = post(a.app, body);
    await expect.poll(async () => (await store.get('o-3'))?.state).toBe('running');
    const busy = await post(b.app, body);
    expect(busy.statusCode).toBe(409);
    expect(busy.headers['retry-after']).toBe('1');
    expect(busy.headers['idempotent-replayed']).toBe('true');
    expect(busy.json()).toMatchObject({ error: { kind: 'order_in_progress' } });
    gate.resolve();
    expect((await running).statusCode).toBe(200);
    const replay = await post(b.app, body);
    expect(replay.statusCode).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
  });

  it('a timed-out order may be submitted again and runs anew; a declined one is final', async () => {
    const { app, service } = instance({ requestTimeoutMs: 30 });
    const slow = { order_id: 'o-4', amount: 1, delay_ms: { payment: 200 } };
    expect((await post(app, slow)).statusCode).toBe(504);
    expect((await post(app, slow)).statusCode).toBe(504);
    expect((await app.inject({ url: '/order/o-4' })).json()).toMatchObject({ attempt: 2 });

    const declined = { order_id: 'o-5', amount: 1, fail_step: 'payment' };
    await post(app, declined);
    const started = service.tracker.started;
    const again = await post(app, declined);
    expect(again.statusCode).toBe(400);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(service.tracker.started).toBe(started);
  });
});

describe('saga compensation', () => {
  it('undoes every completed step in reverse registration order, and shows it', async () => {
    const undone: string[] = [];
    const step = (name: string, fail = false): Step<Order> => ({
      name,
      run: async (_order, cancel) => {
        await sleep(name === 'c' ? 20 : 1, cancel);
        if (fail) throw new OrderError('no_courier', 'no courier');
      },
      compensate: () => {
        undone.push(name);
        return Promise.resolve();
      },
    });
    const { app } = instance({ steps: () => [step('a'), step('b'), step('c', true)] });
    const answer = await post(app, { order_id: 's-1', amount: 1 });
    expect(undone).toStrictEqual(['b', 'a']);
    expect(answer.statusCode).toBe(503);
    expect(
      answer.json<{ steps: { compensation: string }[] }>().steps.map((s) => s.compensation),
    ).toStrictEqual(['compensated', 'compensated', 'not_needed']);
    const recorded = (await app.inject({ url: '/order/s-1' })).json<{
      steps: { compensation: string }[];
    }>();
    expect(recorded.steps.map((s) => s.compensation)).toStrictEqual([
      'compensated',
      'compensated',
      'not_needed',
    ]);
  });

  it('compensates even when the client went away, under its own deadline', async () => {
    const compensated = deferred<boolean>();
    let compensateCancel: Cancellation | undefined;
    const steps = (): Step<Order>[] => [
      {
        name: 'payment',
        run: () => Promise.resolve(),
        compensate: (_order, cancel) => {
          compensateCancel = cancel;
          compensated.resolve(cancel.aborted);
          return Promise.resolve();
        },
      },
      { name: 'courier', run: (_order, cancel) => sleep(10_000, cancel) },
    ];
    const { ledger, service, store } = instance({ steps });
    const clientGone = new AbortController();
    const order = { id: 's-2', amount: 1 };
    const answer = ledger.submit(
      order,
      { order_id: 's-2', amount: 1 },
      {
        parent: clientGone.signal,
      },
    );
    await expect.poll(async () => (await store.get('s-2'))?.steps[0]?.status).toBe('ok');
    clientGone.abort(new OrderError('canceled', 'client left'));
    expect(await compensated.promise).toBe(false);
    expect(compensateCancel?.aborted).toBe(false);
    const result = await answer;
    expect(result).toMatchObject({ kind: 'outcome', outcome: { error: { kind: 'canceled' } } });
    expect(service.tracker.active).toBe(0);
  });

  it('retries a failed compensation with backoff until it succeeds', async () => {
    let clock = 1_000_000;
    const { app, ledger } = instance({
      ledger: { now: () => clock, random: () => 0.5, compensationMaxAttempts: 5 },
    });
    const answer = await post(app, {
      order_id: 's-3',
      amount: 1,
      fail_step: 'courier',
      fail_compensation: { payment: 2 },
    });
    expect(answer.json<{ steps: { compensation: string }[] }>().steps[0]?.compensation).toBe(
      'compensation_failed',
    );
    const payment = async () => (await ledger.get('s-3'))?.steps.find((s) => s.name === 'payment');
    // Not due yet: nothing happens.
    await ledger.sweep();
    expect(await payment()).toMatchObject({ compensationAttempts: 1 });
    clock += retryDelayMs(1, 10, 60_000, () => 0.5);
    await ledger.sweep();
    expect(await payment()).toMatchObject({
      compensation: 'compensation_failed',
      compensationAttempts: 2,
    });
    clock += retryDelayMs(2, 10, 60_000, () => 0.5);
    await ledger.sweep();
    expect(await payment()).toMatchObject({
      compensation: 'compensated',
      compensationAttempts: 3,
      needsOperator: false,
    });
  });

  it('flags a compensation for an operator after the attempt limit: GET, log and hook', async () => {
    let clock = 1_000_000;
    const flagged: string[] = [];
    const logged: string[] = [];
    const log = (_details: object, message: string): void => {
      logged.push(message);
    };
    const { app, ledger } = instance({
      ledger: {
        now: () => clock,
        compensationMaxAttempts: 2,
        hooks: { operatorFlagged: (orderId, step) => flagged.push(`${orderId}/${step}`) },
        logger: { info: log, warn: log, error: log },
      },
    });
    await post(app, {
      order_id: 's-4',
      amount: 1,
      fail_step: 'courier',
      fail_compensation: { vendor: 1000 },
    });
    clock += 60_000;
    await ledger.sweep();
    clock += 60_000;
    await ledger.sweep();
    expect(flagged).toStrictEqual(['s-4/vendor']);
    expect(logged).toContain('compensation failed for good: operator action needed');
    const recorded = (await app.inject({ url: '/order/s-4' })).json<{
      needs_operator: boolean;
      steps: { name: string; compensation: string; needs_operator: boolean }[];
    }>();
    expect(recorded.needs_operator).toBe(true);
    expect(recorded.steps[1]).toMatchObject({
      name: 'vendor',
      compensation: 'compensation_failed',
      needs_operator: true,
    });
  });
});

describe('GET /order/:order_id', () => {
  it('answers 404 JSON for an unknown order', async () => {
    const { app } = instance();
    const answer = await app.inject({ url: '/order/nope' });
    expect(answer.statusCode).toBe(404);
    expect(answer.json()).toStrictEqual({
      status: 'error',
      error: { kind: 'not_found', message: 'no such order' },
    });
  });

  it('returns the recorded order with its steps and timestamps', async () => {
    const { app } = instance();
    await post(app, { order_id: 'g-1', amount: 1 });
    const recorded = (await app.inject({ url: '/order/g-1' })).json<Record<string, unknown>>();
    expect(recorded).toMatchObject({
      order_id: 'g-1',
      state: 'finished',
      status: 'ok',
      attempt: 1,
      needs_operator: false,
    });
    expect(recorded['created_at']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(recorded['finished_at']).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('finds an order whose id has the longest allowed length', async () => {
    const { app } = instance();
    const id = 'x'.repeat(128);
    await post(app, { order_id: id, amount: 1 });
    const answer = await app.inject({ url: `/order/${id}` });
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toMatchObject({ order_id: id, state: 'finished' });
  });

  it.each([
    ['an id over 128 characters', `/order/${'x'.repeat(129)}`, /order_id/],
    ['an id longer than the router takes', `/order/${'x'.repeat(5000)}`, /URL is not valid/],
    ['an id that is not valid percent-encoding', '/order/%E0%A4%A', /URL is not valid/],
  ])('answers 400 bad_request in the service shape for %s', async (_case, url, message) => {
    const { app } = instance();
    const answer = await app.inject({ url });
    expect(answer.statusCode).toBe(400);
    const body = answer.json<{ status: string; error: { kind: string; message: string } }>();
    expect(body.status).toBe('error');
    expect(body.error.kind).toBe('bad_request');
    expect(body.error.message).toMatch(message);
    expect(answer.body).not.toContain('xxxxxxxxxx');
  });
});
