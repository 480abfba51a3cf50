import { afterEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/http/app.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { buildTestApp, deferred, type TestApp, type TestServiceOptions } from '../helpers.js';

// The Idempotency-Key header as HTTP carries it: how the key is read, and the headers and
// statuses of the ledger's answers. What the ledger does with a key is tested on the ledger
// itself (test/ledger/order-ledger.test.ts).

const opened: App[] = [];
afterEach(async () => {
  for (const app of opened.splice(0)) await app.close();
});

/** instance builds the app over a fresh memory store unless one is given; steps at 0 ms. */
function instance(options: TestServiceOptions = {}): TestApp {
  const made = buildTestApp({ delays: { payment: 0, vendor: 0, courier: 0 }, ...options });
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

describe('Idempotency-Key', () => {
  it('a repeat gets the recorded answer byte for byte, marked Idempotent-Replayed, whatever the order of its fields', async () => {
    const { app, service } = instance();
    const first = await post(app, { order_id: 'o-1', amount: 100, fail_step: 'vendor' }, 'k-1');
    const started = service.tracker.started;
    const again = await post(app, { fail_step: 'vendor', amount: 100, order_id: 'o-1' }, 'k-1');
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
    const { app, service } = instance();
    const body = { order_id: 'o-q', amount: 1 };
    await post(app, body, '"k-quoted"');
    const again = await post(app, body, 'k-quoted');
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(service.tracker.started, 'steps run').toBe(3);
  });

  it('with another body is 422 idempotency_conflict', async () => {
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

  it('while its order runs on another instance is 409 order_in_progress with Retry-After', async () => {
    const store = new MemoryOrderStore();
    const gate = deferred();
    const started = deferred();
    const steps = (): Step<Order>[] => [
      {
        name: 'payment',
        run: () => {
          started.resolve();
          return gate.promise;
        },
      },
    ];
    const a = instance({ store, ownsStore: false, steps });
    const b = instance({ store, ownsStore: false, steps });
    const body = { order_id: 'o-3', amount: 1 };
    const running = post(a.app, body, 'k-3');
    await started.promise;
    const busy = await post(b.app, body, 'k-3');
    expect([busy.statusCode, busy.headers['retry-after']], 'status, Retry-After').toEqual([
      409,
      '1',
    ]);
    expect(busy.json()).toMatchObject({ error: { kind: 'order_in_progress' } });
    gate.resolve();
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
    const { app, service } = instance();
    const answer = await post(app, { order_id: 'o-k', amount: 1 }, key);
    expect(answer.statusCode).toBe(400);
    expect(answer.json()).toMatchObject({
      status: 'error',
      error: { kind: 'bad_request', message: expect.stringMatching(/Idempotency-Key/) as string },
    });
    expect(service.tracker.started, 'steps run').toBe(0);
  });

  it('of 255 characters is accepted', async () => {
    const { app } = instance();
    expect((await post(app, { order_id: 'o-l', amount: 1 }, 'k'.repeat(255))).statusCode).toBe(200);
  });
});
