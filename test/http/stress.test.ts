import { Agent } from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { stepNames, type StepName } from '../../src/order/order.js';
import { buildTestApp, type TestApp } from '../helpers.js';
import { listen, postOrder } from './support.js';

const requestCount = 20_000;
const clientCount = 100;
// Far above any order's queueing under this load, so only the orders built to time out do.
const requestTimeoutMs = 1000;

let testApp: TestApp | undefined;
let agent: Agent | undefined;

afterEach(async () => {
  agent?.destroy();
  await testApp?.app.close();
  testApp = undefined;
  agent = undefined;
});

interface Expected {
  status: number;
  kind?: string;
}

/**
 * orderFor builds the i-th order and the answer it must get: mostly successes, each failing
 * step in turn, and one in 50 held past the deadline by its payment step (never by the
 * courier, so timeouts do not starve the pool).
 */
function orderFor(i: number): { order: Record<string, unknown>; expected: Expected } {
  const delay = (step: number) => (i * 7 + step) % 3; // 0..2 ms
  const delay_ms: Record<StepName, number> = {
    payment: delay(0),
    vendor: delay(1),
    courier: delay(2),
  };
  const order = { order_id: `stress-${i}`, amount: 1 + i, delay_ms };
  if (i % 50 === 49) {
    return {
      order: { ...order, delay_ms: { ...delay_ms, payment: 60_000 } },
      expected: { status: 504, kind: 'timeout' },
    };
  }
  switch (i % 5) {
    case 1:
      return {
        order: { ...order, fail_step: 'payment' },
        expected: { status: 400, kind: 'payment_declined' },
      };
    case 2:
      return {
        order: { ...order, fail_step: 'vendor' },
        expected: { status: 503, kind: 'vendor_unavailable' },
      };
    case 3:
      return {
        order: { ...order, fail_step: 'courier' },
        expected: { status: 503, kind: 'no_courier' },
      };
    default:
      return { order, expected: { status: 200 } };
  }
}

it(`${requestCount} requests over ${clientCount} concurrent clients: every status right, nothing left running`, async () => {
  testApp = buildTestApp({ requestTimeoutMs });
  const { app, service } = testApp;
  const port = await listen(app);
  agent = new Agent({ keepAlive: true, maxSockets: clientCount });

  let next = 0;
  const mismatches: string[] = [];
  const statusCounts = new Map<number, number>();
  let maxInUse = 0;

  async function client(): Promise<void> {
    for (let i = next++; i < requestCount; i = next++) {
      const { order, expected } = orderFor(i);
      const { status, body } = await postOrder(port, order, { agent: agent! });
      statusCounts.set(status, (statusCounts.get(status) ?? 0) + 1);
      maxInUse = Math.max(maxInUse, service.courierPool.inUse);
      const got = body as {
        status?: string;
        order_id?: string;
        error?: { kind?: string };
        steps?: unknown[];
      };
      const ok =
        status === expected.status &&
        got.order_id === `stress-${i}` &&
        got.status === (expected.kind === undefined ? 'ok' : 'error') &&
        got.error?.kind === expected.kind &&
        got.steps?.length === stepNames.length;
      if (!ok && mismatches.length < 10) {
        mismatches.push(
          `order ${i}: got ${status} ${JSON.stringify(body)}, want ${JSON.stringify(expected)}`,
        );
      }
    }
  }

  await Promise.all(Array.from({ length: clientCount }, client));

  expect(mismatches).toStrictEqual([]);
  expect(Object.fromEntries(statusCounts)).toStrictEqual({
    200: 7600,
    400: 4000,
    503: 8000,
    504: 400,
  });
  // Every step of every order ran, and none is running now that all were answered.
  expect(service.tracker.started).toBe(requestCount * stepNames.length);
  expect(service.tracker.active).toBe(0);
  expect(service.tracker.peak).toBeGreaterThan(stepNames.length);
  expect(maxInUse).toBeLessThanOrEqual(service.courierPool.size);
  expect(service.courierPool.inUse).toBe(0);
  expect(service.courierPool.waiting).toBe(0);
});
