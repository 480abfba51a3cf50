import { afterEach, describe, expect, it, vi } from 'vitest';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import type { OrderAnswer } from '../../src/service/order-answer.js';
import { buildTestApp, type TestApp, type TestServiceOptions } from '../helpers.js';
import { withoutDurations } from './support.js';

let testApp: TestApp | undefined;

afterEach(async () => {
  await testApp?.app.close();
  testApp = undefined;
});

function start(options: TestServiceOptions = {}): TestApp {
  testApp = buildTestApp(options);
  return testApp;
}

const instant = { payment: 0, vendor: 0, courier: 0 };

describe('every outcome maps to its HTTP status', () => {
  const cases: {
    name: string;
    status: number;
    order: Record<string, unknown>;
    steps: unknown[];
    error?: { kind: string; message: string };
  }[] = [
    {
      name: 'success is 200',
      status: 200,
      order: {},
      steps: [
        { name: 'payment', status: 'ok' },
        { name: 'vendor', status: 'ok' },
        { name: 'courier', status: 'ok' },
      ],
    },
    {
      name: 'payment_declined is 400',
      status: 400,
      order: { fail_step: 'payment', delay_ms: { ...instant, vendor: 60_000, courier: 60_000 } },
      steps: [
        {
          name: 'payment',
          status: 'error',
          detail: 'payment_declined',
          compensation: 'not_needed',
        },
        { name: 'vendor', status: 'canceled', compensation: 'not_needed' },
        { name: 'courier', status: 'canceled', compensation: 'not_needed' },
      ],
      error: { kind: 'payment_declined', message: 'payment was declined' },
    },
    {
      name: 'vendor_unavailable is 503',
      status: 503,
      order: { fail_step: 'vendor', delay_ms: { ...instant, payment: 60_000, courier: 60_000 } },
      steps: [
        { name: 'payment', status: 'canceled', compensation: 'not_needed' },
        {
          name: 'vendor',
          status: 'error',
          detail: 'vendor_unavailable',
          compensation: 'not_needed',
        },
        { name: 'courier', status: 'canceled', compensation: 'not_needed' },
      ],
      error: { kind: 'vendor_unavailable', message: 'vendor is unavailable' },
    },
    {
      name: 'no_courier is 503',
      status: 503,
      order: { fail_step: 'courier', delay_ms: { ...instant, payment: 60_000, vendor: 60_000 } },
      steps: [
        { name: 'payment', status: 'canceled', compensation: 'not_needed' },
        { name: 'vendor', status: 'canceled', compensation: 'not_needed' },
        { name: 'courier', status: 'error', detail: 'no_courier', compensation: 'not_needed' },
      ],
      error: { kind: 'no_courier', message: 'no courier is available' },
    },
    {
      name: 'timeout is 504',
      status: 504,
      order: { delay_ms: { payment: 0, vendor: 60_000, courier: 0 } },
      steps: [
        { name: 'payment', status: 'ok', compensation: 'pending' },
        { name: 'vendor', status: 'canceled', compensation: 'not_needed' },
        { name: 'courier', status: 'ok', compensation: 'pending' },
      ],
      error: { kind: 'timeout', message: 'order did not complete within 50 ms' },
    },
  ];

  it.each(cases)('$name', async ({ status, order, steps, error }) => {
    const { app, service } = start({ requestTimeoutMs: 50, delays: instant });
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      payload: { order_id: 'order-7', amount: 1, ...order },
    });
    expect(response.statusCode).toBe(status);
    expect(withoutDurations(response.json())).toStrictEqual({
      status: error === undefined ? 'ok' : 'error',
      order_id: 'order-7',
      steps,
      ...(error === undefined ? {} : { error }),
    });
    // The answer comes only after every step settled and gave back its courier slot.
    expect(service.tracker.active).toBe(0);
    expect(service.courierPool.inUse).toBe(0);
  });

  it('canceled is 408', async () => {
    // A step that sees the order's cancellation as canceled: the kind reaches the status table.
    const { app } = start({
      steps: () => [
        {
          name: 'payment',
          run: () => Promise.reject(new OrderError('canceled', 'the client closed the connection')),
        },
      ],
    });
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      payload: { order_id: 'order-8', amount: 1 },
    });
    expect(response.statusCode).toBe(408);
    expect(withoutDurations(response.json())).toStrictEqual({
      status: 'error',
      order_id: 'order-8',
      steps: [{ name: 'payment', status: 'error', detail: 'canceled', compensation: 'not_needed' }],
      error: { kind: 'canceled', message: 'the client closed the connection' },
    });
  });
});

describe('an unexpected failure is 500 internal and leaks nothing', () => {
  const secret = 'db password hunter2 at 10.0.0.7';
  const failures: { name: string; step: Step<Order> }[] = [
    {
      name: 'a step that rejects with a plain Error',
      step: { name: 'payment', run: () => Promise.reject(new Error(secret)) },
    },
    {
      name: 'a step that throws synchronously',
      step: {
        name: 'payment',
        run: () => {
          throw new TypeError(secret);
        },
      },
    },
    {
      name: 'a step that rejects with a non-Error value',
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      step: { name: 'payment', run: () => Promise.reject(secret) },
    },
  ];

  it.each(failures)('$name', async ({ step }) => {
    const vendor: Step<Order> = { name: 'vendor', run: () => Promise.resolve() };
    const { app, service } = start({ steps: () => [step, vendor] });
    // The route gets the failure as the answer's cause (for a library user's logs) ...
    const submit = service.submit.bind(service);
    let answer: OrderAnswer | undefined;
    vi.spyOn(service, 'submit').mockImplementation(async (request) => {
      answer = await submit(request);
      return answer;
    });
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      payload: { order_id: 'order-9', amount: 1 },
    });
    expect(response.statusCode).toBe(500);
    expect(withoutDurations(response.json())).toStrictEqual({
      status: 'error',
      order_id: 'order-9',
      steps: [
        { name: 'payment', status: 'error', detail: 'internal', compensation: 'not_needed' },
        // vendor resolved at once, before the failure was seen.
        { name: 'vendor', status: 'ok', compensation: 'not_needed' },
      ],
      error: { kind: 'internal', message: 'internal error' },
    });
    expect(String(answer?.error?.cause)).toContain('hunter2');
    // ... and sends none of it.
    expect(response.body).not.toContain('hunter2');
    expect(response.body).not.toMatch(/\bat .*\.ts:\d+/);
    expect(service.tracker.active).toBe(0);
  });
});
