import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers.js';
import { settledAfterMs } from './support.js';

// The scenarios of the service's specification, with the default step delays
// (payment 150 ms, vendor 200 ms, courier 100 ms). The clock is fake: each scenario says at
// which millisecond the answer comes and what each step's duration is, exactly.

let testApp: TestApp | undefined;

beforeEach(() => {
  // Timers and clocks only: the app's own callbacks (nextTick, setImmediate) run as usual.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
});

afterEach(async () => {
  // Closing waits for the compensations started after an answer: they run on the fake clock.
  if (testApp !== undefined) await settledAfterMs(testApp.app.close());
  testApp = undefined;
  vi.useRealTimers();
});

/** post sends the order to a fresh app; resolves with the answer and when it came. */
async function post(requestTimeoutMs: number, order: Record<string, unknown>) {
  testApp = buildTestApp({ requestTimeoutMs });
  const answer = testApp.app.inject({
    method: 'POST',
    url: '/order',
    payload: { order_id: 'seed-1', amount: 4200, ...order },
  });
  const answeredAtMs = await settledAfterMs(answer);
  const response = await answer;
  return { status: response.statusCode, body: response.json<unknown>(), answeredAtMs, ...testApp };
}

describe('seed scenarios', () => {
  it('a payment failure with vendor and courier delayed 800 ms answers 400 as soon as payment fails', async () => {
    const { status, body, answeredAtMs, service } = await post(2000, {
      fail_step: 'payment',
      delay_ms: { vendor: 800, courier: 800 },
    });
    expect(status, 'status').toBe(400);
    expect(answeredAtMs, 'answered after ms').toBe(150);
    expect(body).toStrictEqual({
      status: 'error',
      order_id: 'seed-1',
      steps: [
        {
          name: 'payment',
          status: 'error',
          duration_ms: 150,
          detail: 'payment_declined',
          compensation: 'not_needed',
        },
        { name: 'vendor', status: 'canceled', duration_ms: 150, compensation: 'not_needed' },
        { name: 'courier', status: 'canceled', duration_ms: 150, compensation: 'not_needed' },
      ],
      error: { kind: 'payment_declined', message: 'payment was declined' },
    });
    expect([service.tracker.active, service.courierPool.inUse], 'steps, couriers').toEqual([0, 0]);
  });

  it.each([200, 2000])(
    'all delays 3000 ms answer 504 at the %i ms request deadline with every step canceled',
    async (deadlineMs) => {
      const { status, body, answeredAtMs, service } = await post(deadlineMs, {
        delay_ms: { payment: 3000, vendor: 3000, courier: 3000 },
      });
      expect(status, 'status').toBe(504);
      expect(answeredAtMs, 'answered after ms').toBe(deadlineMs);
      const canceled = { status: 'canceled', duration_ms: deadlineMs, compensation: 'not_needed' };
      expect(body).toStrictEqual({
        status: 'error',
        order_id: 'seed-1',
        steps: [
          { name: 'payment', ...canceled },
          { name: 'vendor', ...canceled },
          { name: 'courier', ...canceled },
        ],
        error: { kind: 'timeout', message: `order did not complete within ${deadlineMs} ms` },
      });
      expect([service.tracker.active, service.courierPool.inUse], 'steps, couriers').toEqual([
        0, 0,
      ]);
    },
  );

  it('a vendor failure answers 503 when it fails at 200 ms; steps that finished first stay ok', async () => {
    const { status, body, answeredAtMs, service } = await post(2000, { fail_step: 'vendor' });
    expect(status, 'status').toBe(503);
    expect(answeredAtMs, 'answered after ms').toBe(200);
    // payment (150 ms) and courier (100 ms) finish before vendor fails at 200 ms.
    expect(body).toStrictEqual({
      status: 'error',
      order_id: 'seed-1',
      steps: [
        { name: 'payment', status: 'ok', duration_ms: 150, compensation: 'pending' },
        {
          name: 'vendor',
          status: 'error',
          duration_ms: 200,
          detail: 'vendor_unavailable',
          compensation: 'not_needed',
        },
        { name: 'courier', status: 'ok', duration_ms: 100, compensation: 'pending' },
      ],
      error: { kind: 'vendor_unavailable', message: 'vendor is unavailable' },
    });
    expect(service.tracker.active, 'steps in flight').toBe(0);
  });

  it('an order with the default delays answers 200 once its slowest step is done, every step ok', async () => {
    const { status, body, answeredAtMs } = await post(2000, {});
    expect(status, 'status').toBe(200);
    expect(answeredAtMs, 'answered after ms').toBe(200);
    expect(body).toStrictEqual({
      status: 'ok',
      order_id: 'seed-1',
      steps: [
        { name: 'payment', status: 'ok', duration_ms: 150 },
        { name: 'vendor', status: 'ok', duration_ms: 200 },
        { name: 'courier', status: 'ok', duration_ms: 100 },
      ],
    });
  });
});
