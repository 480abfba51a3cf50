import { afterEach, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers.js';
import { withoutDurations } from './support.js';

// The scenarios of the service's specification, with the default step delays
// (payment 150 ms, vendor 200 ms, courier 100 ms).

let testApp: TestApp | undefined;

afterEach(async () => {
  await testApp?.app.close();
  testApp = undefined;
});

async function post(requestTimeoutMs: number, order: Record<string, unknown>) {
  testApp = buildTestApp({ requestTimeoutMs });
  const startedAt = performance.now();
  const response = await testApp.app.inject({
    method: 'POST',
    url: '/order',
    payload: { order_id: 'seed-1', amount: 4200, ...order },
  });
  const elapsedMs = performance.now() - startedAt;
  return { response, elapsedMs, service: testApp.service };
}

const allCanceled = [
  { name: 'payment', status: 'canceled', compensation: 'not_needed' },
  { name: 'vendor', status: 'canceled', compensation: 'not_needed' },
  { name: 'courier', status: 'canceled', compensation: 'not_needed' },
];

describe('seed scenarios', () => {
  it('a payment failure with vendor and courier delayed 800 ms answers 400 as soon as payment fails', async () => {
    const { response, elapsedMs, service } = await post(2000, {
      fail_step: 'payment',
      delay_ms: { vendor: 800, courier: 800 },
    });
    expect(response.statusCode).toBe(400);
    expect(withoutDurations(response.json())).toStrictEqual({
      status: 'error',
      order_id: 'seed-1',
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
    });
    // About 150 ms (the payment delay); far below the 800 ms the others would have taken.
    expect(elapsedMs).toBeGreaterThanOrEqual(140);
    expect(elapsedMs).toBeLessThan(600);
    const steps = response.json<{ steps: { duration_ms: number }[] }>().steps;
    for (const step of steps) expect(step.duration_ms).toBeLessThan(600);
    expect(service.tracker.active).toBe(0);
    expect(service.courierPool.inUse).toBe(0);
  });

  it('all delays 3000 ms answer 504 at the request deadline with every step canceled', async () => {
    const { response, elapsedMs, service } = await post(200, {
      delay_ms: { payment: 3000, vendor: 3000, courier: 3000 },
    });
    expect(response.statusCode).toBe(504);
    expect(withoutDurations(response.json())).toStrictEqual({
      status: 'error',
      order_id: 'seed-1',
      steps: allCanceled,
      error: { kind: 'timeout', message: 'order did not complete within 200 ms' },
    });
    expect(elapsedMs).toBeGreaterThanOrEqual(190);
    expect(elapsedMs).toBeLessThan(1500);
    expect(service.tracker.active).toBe(0);
    expect(service.courierPool.inUse).toBe(0);
  });

  it('all delays 3000 ms answer 504 at the default 2000 ms deadline', async () => {
    const { response, elapsedMs } = await post(2000, {
      delay_ms: { payment: 3000, vendor: 3000, courier: 3000 },
    });
    expect(response.statusCode).toBe(504);
    expect(withoutDurations(response.json())).toStrictEqual({
      status: 'error',
      order_id: 'seed-1',
      steps: allCanceled,
      error: { kind: 'timeout', message: 'order did not complete within 2000 ms' },
    });
    expect(elapsedMs).toBeGreaterThanOrEqual(1990);
    expect(elapsedMs).toBeLessThan(2900);
  });

  it('a vendor failure answers 503; steps that finished first stay ok', async () => {
    const { response, service } = await post(2000, { fail_step: 'vendor' });
    expect(response.statusCode).toBe(503);
    // payment (150 ms) and courier (100 ms) finish before vendor fails at 200 ms.
    expect(withoutDurations(response.json())).toStrictEqual({
      status: 'error',
      order_id: 'seed-1',
      steps: [
        { name: 'payment', status: 'ok', compensation: 'pending' },
        {
          name: 'vendor',
          status: 'error',
          detail: 'vendor_unavailable',
          compensation: 'not_needed',
        },
        { name: 'courier', status: 'ok', compensation: 'pending' },
      ],
      error: { kind: 'vendor_unavailable', message: 'vendor is unavailable' },
    });
    expect(service.tracker.active).toBe(0);
  });

  it('an order with the default delays answers 200 with every step ok', async () => {
    const { response } = await post(2000, {});
    expect(response.statusCode).toBe(200);
    expect(withoutDurations(response.json())).toStrictEqual({
      status: 'ok',
      order_id: 'seed-1',
      steps: [
        { name: 'payment', status: 'ok' },
        { name: 'vendor', status: 'ok' },
        { name: 'courier', status: 'ok' },
      ],
    });
  });
});
