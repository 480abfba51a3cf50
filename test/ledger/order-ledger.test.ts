import { afterEach, describe, expect, it } from 'vitest';
import { CancelSource, type Cancellation } from '../../src/core/cancellation.js';
import { sleep } from '../../src/core/sleep.js';
import type { App } from '../../src/http/app.js';
import type { OrderStore } from '../../src/ledger/order-store.js';
import { retryDelayMs } from '../../src/ledger/saga.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import type { OrderService, OrderServiceOptions } from '../../src/service/order-service.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { buildTestApp, deferred } from '../helpers.js';

const opened: App[] = [];
afterEach(async () => {
  for (const app of opened.splice(0)) await app.close();
});

/** instance builds the app over `store` (a fresh memory store by default), steps at 5 ms. */
function instance(options: OrderServiceOptions = {}): { app: App; service: OrderService } {
  const made = buildTestApp({
    delays: { payment: 5, vendor: 5, courier: 5 },
    compensationRetryBaseMs: 10,
    compensationMaxAttempts: 3,
    ...options,
  });
  opened.push(made.app);
  return made;
}

function post(app: App, body: object, key?: string) {
  return app.inject({
    method: 'POST',
    url: '/order',
    payload: body,
    headers: key === undefined ? {} : { 'idempotency-key': key },
  });
}

describe('submission without an Idempotency-Key', () => {
  it('runs every request, as the original service does; GET shows the most recent run', async () => {
    const { app, service } = instance();
    const first = await post(app, { order_id: 'o2', amount: 10, fail_step: 'payment' });
    const second = await post(app, { order_id: 'o2', amount: 10, fail_step: 'vendor' });
    expect(first.statusCode).toBe(400);
    expect(second.statusCode).toBe(503);
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect(service.tracker.started).toBe(6);
    const recorded = (await app.inject({ url: '/order/o2' })).json<Record<string, unknown>>();
    expect(recorded).toMatchObject({ order_id: 'o2', error: { kind: 'vendor_unavailable' } });
  });
});

describe('idempotent submission by Idempotency-Key', () => {
  it('a repeat with the same key and body replays the recorded answer and runs no step', async () => {
    const { app, service } = instance();
    const body = { order_id: 'o-1', amount: 100, fail_step: 'vendor' };
    const first = await post(app, body, 'k-1');
    const started = service.tracker.started;
    const second = await post(app, { fail_step: 'vendor', amount: 100, order_id: 'o-1' }, 'k-1');
    expect(first.statusCode).toBe(503);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(second.statusCode).toBe(503);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toStrictEqual(first.json());
    expect(service.tracker.started).toBe(started);
  });

  it('accepts the key as a quoted string, the same key as bare', async () => {
    const { app, service } = instance();
    const body = { order_id: 'o-q', amount: 1 };
    await post(app, body, '"k-quoted"');
    const again = await post(app, body, 'k-quoted');
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(service.tracker.started).toBe(3);
  });

  it('the same key with another body is 422 idempotency_conflict', async () => {
    const { app } = instance();
    expect((await post(app, { order_id: 'o-2', amount: 100 }, 'k-2')).statusCode).toBe(200);
    const conflict = await post(app, { order_id: 'o-2', amount: 101 }, 'k-2');
    expect(conflict.statusCode).toBe(422);
    expect(conflict.json()).toStrictEqual({
      status: 'error',
      order_id: 'o-2',
      error: {
        kind: 'idempotency_conflict',
        message: 'this Idempotency-Key was already used with a different request',
      },
    });
  });

  it('50 concurrent repeats execute once; all get the same answer, 49 replayed', async () => {
    const { app, service } = instance();
    const body = { order_id: 'o-race', amount: 7, delay_ms: { payment: 20 } };
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(app, body, 'k-race')));
    expect(service.tracker.started).toBe(3);
    expect(answers.map((a) => a.statusCode)).toStrictEqual(Array(50).fill(200));
    const replayed = answers.filter((a) => a.headers['idempotent-replayed'] === 'true');
    expect(replayed).toHaveLength(49);
    for (const answer of answers) expect(answer.json()).toStrictEqual(answers[0]?.json());
  });

  it('a repeat on another instance while the order runs gets 409 with Retry-After', async () => {
    const store = new MemoryOrderStore();
    const gate = deferred();
    const steps = (): Step<Order>[] => [{ name: 'payment', run: () => gate.promise }];
    const a = instance({ store, ownsStore: false, steps });
    const b = instance({ store, ownsStore: false, steps });
    const body = { order_id: 'o-3', amount: 1 };
    const running = post(a.app, body, 'k-3');
    await expect.poll(async () => (await store.getByKey('k-3'))?.state).toBe('running');
    const busy = await post(b.app, body, 'k-3');
    expect(busy.statusCode).toBe(409);
    expect(busy.headers['retry-after']).toBe('1');
    expect(busy.json()).toMatchObject({ error: { kind: 'order_in_progress' } });
    gate.resolve();
    expect((await running).statusCode).toBe(200);
    const replay = await post(b.app, body, 'k-3');
    expect(replay.statusCode).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
  });

  it('a timed-out order runs anew when repeated; a declined one is final', async () => {
    const { app, service } = instance({ requestTimeoutMs: 30 });
    const slow = { order_id: 'o-4', amount: 1, delay_ms: { payment: 200 } };
    expect((await post(app, slow, 'k-4')).statusCode).toBe(504);
    // Vendor and courier had finished: until they are undone, the key is still in progress.
    const early = await post(app, slow, 'k-4');
    expect(early.statusCode).toBe(409);
    await service.ledger.idle();
    expect((await post(app, slow, 'k-4')).statusCode).toBe(504);
    expect((await app.inject({ url: '/order/o-4' })).json()).toMatchObject({ attempt: 2 });

    const declined = { order_id: 'o-5', amount: 1, fail_step: 'payment' };
    await post(app, declined, 'k-5');
    const started = service.tracker.started;
    const again = await post(app, declined, 'k-5');
    expect(again.statusCode).toBe(400);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(service.tracker.started).toBe(started);
  });

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['with a space', 'a b'],
    ['with a comma and space (two headers)', 'a, b'],
    ['with escapes in quotes', '"a\\"b"'],
    ['non-ASCII', 'clé'],
  ])('a key that is %s is 400 bad_request, and nothing runs', async (_case, key) => {
    const { app, service } = instance();
    const answer = await post(app, { order_id: 'o-k', amount: 1 }, key);
    expect(answer.statusCode).toBe(400);
    expect(answer.json()).toMatchObject({
      status: 'error',
      error: { kind: 'bad_request', message: expect.stringMatching(/Idempotency-Key/) as string },
    });
    expect(service.tracker.started).toBe(0);
  });

  it('accepts a key of 255 characters', async () => {
    const { app } = instance();
    expect((await post(app, { order_id: 'o-l', amount: 1 }, 'k'.repeat(255))).statusCode).toBe(200);
  });
});

describe('saga compensation', () => {
  it('answers with the undoing pending, then undoes completed steps in reverse order', async () => {
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
    const { app, service } = instance({ steps: () => [step('a'), step('b'), step('c', true)] });
    const answer = await post(app, { order_id: 's-1', amount: 1 });
    expect(answer.statusCode).toBe(503);
    expect(
      answer.json<{ steps: { compensation: string }[] }>().steps.map((s) => s.compensation),
    ).toStrictEqual(['pending', 'pending', 'not_needed']);
    await service.ledger.idle();
    expect(undone).toStrictEqual(['b', 'a']);
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
    const paid = deferred();
    const steps = (): Step<Order>[] => [
      {
        name: 'payment',
        run: () => {
          paid.resolve();
          return Promise.resolve();
        },
        compensate: (_order, cancel) => {
          compensateCancel = cancel;
          compensated.resolve(cancel.aborted);
          return Promise.resolve();
        },
      },
      { name: 'courier', run: (_order, cancel) => sleep(10_000, cancel) },
    ];
    const { service } = instance({ steps });
    const clientGone = new CancelSource();
    const answer = service.submit({ order: { id: 's-2', amount: 1 }, parent: clientGone });
    await paid.promise;
    clientGone.abort(new OrderError('canceled', 'client left'));
    expect(await compensated.promise).toBe(false);
    expect(compensateCancel?.aborted).toBe(false);
    expect(await answer).toMatchObject({ outcome: { error: { kind: 'canceled' } } });
    await service.ledger.idle();
    expect(service.tracker.active).toBe(0);
  });

  it('retries a failed compensation with backoff until it succeeds', async () => {
    let clock = 1_000_000;
    const { app, service } = instance({
      clock: () => clock,
      random: () => 0.5,
      compensationMaxAttempts: 5,
    });
    await post(app, {
      order_id: 's-3',
      amount: 1,
      fail_step: 'courier',
      fail_compensation: { payment: 2 },
    });
    await service.ledger.idle();
    const payment = async () =>
      (await service.ledger.get('s-3'))?.compensations.find((c) => c.name === 'payment');
    expect(await payment()).toMatchObject({ status: 'compensation_failed', attempts: 1 });
    // Not due yet: nothing happens.
    await service.ledger.sweep();
    expect(await payment()).toMatchObject({ attempts: 1 });
    clock += retryDelayMs(1, 10, 60_000, () => 0.5);
    await service.ledger.sweep();
    expect(await payment()).toMatchObject({ status: 'compensation_failed', attempts: 2 });
    clock += retryDelayMs(2, 10, 60_000, () => 0.5);
    await service.ledger.sweep();
    expect(await payment()).toMatchObject({
      status: 'compensated',
      attempts: 3,
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
    const { app, service } = instance({
      clock: () => clock,
      compensationMaxAttempts: 2,
      ledgerHooks: { operatorFlagged: (orderId, step) => flagged.push(`${orderId}/${step}`) },
      logger: { info: log, warn: log, error: log },
    });
    await post(app, {
      order_id: 's-4',
      amount: 1,
      fail_step: 'courier',
      fail_compensation: { vendor: 1000 },
    });
    await service.ledger.idle();
    clock += 60_000;
    await service.ledger.sweep();
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

describe('recovery', () => {
  it('a run left running by a dead process is recorded interrupted and compensated', async () => {
    const store: OrderStore = new MemoryOrderStore();
    await store.begin({
      runId: 'dead-run',
      orderId: 'r-1',
      order: { id: 'r-1', amount: 1 },
      owner: 'dead-instance',
      leaseUntil: Date.now() + 60_000,
      now: Date.now(),
    });
    const { app, service } = instance({ store, ownsStore: false });
    // The store is unshared: at start-up every running run is an orphan, whatever its lease.
    await service.start();
    await service.ledger.idle();
    const recorded = (await app.inject({ url: '/order/r-1' })).json<{
      status: string;
      error: { kind: string };
      steps: { name: string; status: string; compensation: string }[];
    }>();
    expect(recorded.status).toBe('error');
    expect(recorded.error.kind).toBe('interrupted');
    expect(recorded.steps.map((s) => [s.name, s.status, s.compensation])).toStrictEqual([
      ['payment', 'interrupted', 'compensated'],
      ['vendor', 'interrupted', 'compensated'],
      ['courier', 'interrupted', 'compensated'],
    ]);
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

  it('returns the recorded run with its steps and timestamps', async () => {
    const { app } = instance();
    await post(app, { order_id: 'g-1', amount: 1 }, 'k-g');
    const recorded = (await app.inject({ url: '/order/g-1' })).json<Record<string, unknown>>();
    expect(recorded).toMatchObject({
      order_id: 'g-1',
      idempotency_key: 'k-g',
      state: 'finished',
      status: 'ok',
      attempt: 1,
      needs_operator: false,
    });
    expect(recorded['run_id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(recorded['created_at']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(recorded['finished_at']).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('shows a run still running with each step running', async () => {
    const gate = deferred();
    const { app } = instance({
      steps: () => [{ name: 'payment', run: () => gate.promise }],
    });
    const running = post(app, { order_id: 'g-2', amount: 1 });
    await expect.poll(async () => (await app.inject({ url: '/order/g-2' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/order/g-2' })).json()).toMatchObject({
      state: 'running',
      status: 'running',
      steps: [{ name: 'payment', status: 'running' }],
    });
    gate.resolve();
    await running;
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
