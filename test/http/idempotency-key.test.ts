import { afterEach, describe, expect, it } from 'vitest';
import type { Order } from '../../src/order/order.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { gatedStep } from '../helpers.js';
import { closeInstantApps, injectOrder, instantApp } from './support.js';

// The Idempotency-Key header as HTTP carries it: how the key is read, and the headers and
// statuses of the ledger's answers. What the ledger does with a key is tested on the ledger
// itself (test/ledger/order-ledger.test.ts).

afterEach(closeInstantApps);

describe('Idempotency-Key', () => {
  it('a repeat gets the recorded answer byte for byte, marked Idempotent-Replayed, whatever the order of its fields', async () => {
    const { app, service } = instantApp();
    const first = await injectOrder(
      app,
      { order_id: 'o-1', amount: 100, fail_step: 'vendor' },
      'k-1',
    );
    const started = service.tracker.started;
    const again = await injectOrder(
      app,
      { fail_step: 'vendor', amount: 100, order_id: 'o-1' },
      'k-1',
    );
    expect([first.statusCode, first.headers['idempotent-replayed']], 'first').toEqual([
      503,
      undefined,
    ]);
    expect([again.statusCode, again.headers['idempotent-replayed']], 'again').toEqual([
      503,
      'true',
    ]);
    expect(again.body, 'body').toBe(first.body);
    expect(service.tracker.started, 'steps run').toBe(started);
  });

  it('is the same key bare or as a quoted string', async () => {
    const { app, service } = instantApp();
    const body = { order_id: 'o-q', amount: 1 };
    await injectOrder(app, body, '"k-quoted"');
    const again = await injectOrder(app, body, 'k-quoted');
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(service.tracker.started, 'steps run').toBe(3);
  });

  it('with another body is 422 idempotency_conflict', async () => {
    const { app } = instantApp();
    expect((await injectOrder(app, { order_id: 'o-2', amount: 100 }, 'k-2')).statusCode).toBe(200);
    const conflict = await injectOrder(app, { order_id: 'o-2', amount: 101 }, 'k-2');
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

  it('while its order runs on another instance is 409 order_in_progress with Retry-After', async () => {
    const store = new MemoryOrderStore();
    const payment = gatedStep<Order>();
    const steps = () => [payment.step];
    const a = instantApp({ store, ownsStore: false, steps });
    const b = instantApp({ store, ownsStore: false, steps });
    const body = { order_id: 'o-3', amount: 1 };
    const running = injectOrder(a.app, body, 'k-3');
    await payment.started.promise;
    const busy = await injectOrder(b.app, body, 'k-3');
    expect([busy.statusCode, busy.headers['retry-after']], 'status, Retry-After').toEqual([
      409,
      '1',
    ]);
    expect(busy.json()).toMatchObject({ error: { kind: 'order_in_progress' } });
    payment.gate.resolve();
    expect((await running).statusCode).toBe(200);
  });

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['with a space', 'a b'],
    ['with a comma and space (two headers)', 'a, b'],
    ['with escapes in quotes', '"a\\"b"'],
    ['non-ASCII', 'clé'],
  ])('that is %s is 400 bad_request, and nothing runs', async (_case, key) => {
    const { app, service } = instantApp();
    const answer = await injectOrder(app, { order_id: 'o-k', amount: 1 }, key);
    expect(answer.statusCode).toBe(400);
    expect(answer.json()).toMatchObject({
      status: 'error',
      error: { kind: 'bad_request', message: expect.stringMatching(/Idempotency-Key/) as string },
    });
    expect(service.tracker.started, 'steps run').toBe(0);
  });

  it('of 255 characters is accepted', async () => {
    const { app } = instantApp();
    expect(
      (await injectOrder(app, { order_id: 'o-l', amount: 1 }, 'k'.repeat(255))).statusCode,
    ).toBe(200);
  });
});
