import type { ClientRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { Cancellation } from '../../src/core/cancellation.js';
import { PoolDecorator } from '../../src/core/pool-decorator.js';
import { Semaphore, type Permit } from '../../src/core/semaphore.js';
import { buildTestApp, deferred, type TestApp } from '../helpers.js';
import { listen, postOrder } from './support.js';

// These run against a real listening server: only a real socket can go away mid-order.

let testApp: TestApp | undefined;

afterEach(async () => {
  await testApp?.app.close();
  testApp = undefined;
});

interface Sent {
  status: number;
  body: unknown;
}

/** SignallingPool is a pool of one slot that says when the slot is taken or queued for. */
class SignallingPool extends PoolDecorator {
  readonly taken = deferred();
  readonly queued = deferred();

  constructor() {
    super(new Semaphore(1));
  }

  acquire(cancel?: Cancellation): Promise<Permit> {
    const permit = this.inner.acquire(cancel);
    if (this.inner.waiting > 0) this.queued.resolve();
    return permit.then((granted) => {
      this.taken.resolve();
      return granted;
    });
  }
}

/**
 * startServer listens with a courier pool of one slot and records what the server sends
 * for each request, even when nobody is left to read it: the server answers only once every
 * step of the order has settled.
 */
async function startServer() {
  const pool = new SignallingPool();
  testApp = buildTestApp({ courierPool: pool });
  const sent = deferred<Sent>();
  testApp.app.addHook('onSend', async (_request, reply, payload) => {
    sent.resolve({ status: reply.statusCode, body: JSON.parse(String(payload)) as unknown });
    return payload;
  });
  const port = await listen(testApp.app);
  return { ...testApp, port, sent: sent.promise, pool };
}

/** sendAndAbandon sends a long order and resolves with its request, to destroy later. */
function sendAndAbandon(port: number): {
  request: Promise<ClientRequest>;
  settled: Promise<unknown>;
} {
  const request = deferred<ClientRequest>();
  const settled = postOrder(
    port,
    {
      order_id: 'gone-1',
      amount: 1,
      delay_ms: { payment: 60_000, vendor: 60_000, courier: 60_000 },
    },
    { onRequest: request.resolve },
  ).then(
    () => 'answered',
    (error: unknown) => error,
  );
  return { request: request.promise, settled };
}

const canceledByClient = {
  status: 408,
  body: {
    status: 'error',
    order_id: 'gone-1',
    steps: [
      {
        name: 'payment',
        status: 'canceled',
        duration_ms: expect.any(Number) as number,
        compensation: 'not_needed',
      },
      {
        name: 'vendor',
        status: 'canceled',
        duration_ms: expect.any(Number) as number,
        compensation: 'not_needed',
      },
      {
        name: 'courier',
        status: 'canceled',
        duration_ms: expect.any(Number) as number,
        compensation: 'not_needed',
      },
    ],
    error: { kind: 'canceled', message: 'the client closed the connection' },
  },
};

describe('a client that goes away aborts its order at once', () => {
  it('while the courier holds the only pool slot: every step stops and the slot is freed', async () => {
    const { service, port, sent, pool } = await startServer();
    const { request, settled } = sendAndAbandon(port);

    await pool.taken.promise;
    expect(service.tracker.active, 'steps running').toBe(3);

    (await request).destroy();
    await expect(settled).resolves.toBeInstanceOf(Error);
    // The steps were due in 60 s: an answer now means the abort stopped them.
    await expect(sent).resolves.toStrictEqual(canceledByClient);
    expect(
      [service.tracker.active, service.courierPool.inUse, service.courierPool.waiting],
      'steps running, slots in use, waiting',
    ).toEqual([0, 0, 0]);
  });

  it('while the courier waits for a slot: it leaves the queue and never takes the slot', async () => {
    const { service, port, sent, pool } = await startServer();
    const held: Permit = await service.courierPool.acquire();
    const { request, settled } = sendAndAbandon(port);

    await pool.queued.promise;
    expect(service.tracker.active, 'steps running').toBe(3);

    (await request).destroy();
    await expect(settled).resolves.toBeInstanceOf(Error);
    await expect(sent).resolves.toStrictEqual(canceledByClient);
    expect([service.courierPool.waiting, service.tracker.active], 'waiting, steps running').toEqual(
      [0, 0],
    );

    // The slot goes back to the pool, not to the abandoned order.
    held.release();
    expect(service.courierPool.inUse).toBe(0);
    const next = await service.courierPool.acquire();
    expect(service.courierPool.inUse).toBe(1);
    next.release();
  });

  it('the server keeps serving after a client went away', async () => {
    const { service, port, sent, pool } = await startServer();
    const { request, settled } = sendAndAbandon(port);
    await pool.taken.promise;
    (await request).destroy();
    await settled;
    await sent;
    expect(service.courierPool.inUse, 'slots in use').toBe(0);

    const next = await postOrder(port, {
      order_id: 'next-1',
      amount: 1,
      delay_ms: { payment: 0, vendor: 0, courier: 0 },
    });
    expect(next.status).toBe(200);
    expect(service.tracker.active).toBe(0);
  });
});
