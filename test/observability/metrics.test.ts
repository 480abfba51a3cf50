import { afterEach, describe, expect, it } from 'vitest';
import { deferred } from '../helpers.js';
import {
  buildObservedApp,
  courierHolding,
  failingOrder,
  quickOrder,
  type ObservedTestApp,
} from './observed-app.js';

let current: ObservedTestApp | undefined;
afterEach(async () => {
  await current?.app.close();
  current = undefined;
});

function build(options: Parameters<typeof buildObservedApp>[0] = {}): ObservedTestApp {
  current = buildObservedApp(options);
  return current;
}

async function scrape(test: ObservedTestApp): Promise<string> {
  const response = await test.app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.body;
}

/** sample returns the value of the series `name{labels}`, or undefined if it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  it('counts orders by outcome and kind, and times orders and steps by status', async () => {
    const test = build();
    const ok = await test.app.inject({ method: 'POST', url: '/order', payload: quickOrder });
    expect(ok.statusCode).toBe(200);
    const failed = await test.app.inject({ method: 'POST', url: '/order', payload: failingOrder });
    expect(failed.statusCode).toBe(400);

    const text = await scrape(test);
    const got = (series: string): number | undefined => sample(text, series);
    expect(got('order_pipeline_orders_total{outcome="ok",kind="none"}')).toBe(1);
    expect(got('order_pipeline_orders_total{outcome="error",kind="payment_declined"}')).toBe(1);
    // Every kind exists from the start, so rate() works before the first failure of a kind.
    expect(got('order_pipeline_orders_total{outcome="error",kind="timeout"}')).toBe(0);
    expect(got('order_pipeline_order_duration_seconds_count{outcome="ok"}')).toBe(1);
    expect(got('order_pipeline_order_duration_seconds_count{outcome="error"}')).toBe(1);
    expect(got('order_pipeline_step_duration_seconds_count{step="payment",status="error"}')).toBe(
      1,
    );
    expect(got('order_pipeline_step_duration_seconds_count{step="vendor",status="canceled"}')).toBe(
      1,
    );
    expect(got('order_pipeline_step_duration_seconds_count{step="courier",status="ok"}')).toBe(1);
    expect(got('order_pipeline_courier_wait_seconds_count{result="acquired"}')).toBe(2);
    expect(got('order_pipeline_courier_pool_slots')).toBe(5);
    expect(got('order_pipeline_courier_pool_slots_in_use')).toBe(0);
    expect(got('order_pipeline_courier_pool_waiters')).toBe(0);
    expect(got('order_pipeline_steps_in_flight')).toBe(0);
    // Label values stay bounded: an order id is never a label.
    expect(text).not.toContain('o-fail');
    expect(text).not.toContain('order_id');
  });

  it('reads the pool and the steps in flight at scrape time', async () => {
    const courierDone = deferred();
    const steps = courierHolding(() => courierDone.promise);
    const test = build({ courierPoolSize: 1, steps });
    const first = test.app.inject({ method: 'POST', url: '/order', payload: quickOrder });
    const second = test.app.inject({
      method: 'POST',
      url: '/order',
      payload: { ...quickOrder, order_id: 'o-second' },
    });
    const pool = test.service.courierPool;
    await expect.poll(() => pool.inUse === 1 && pool.waiting === 1).toBe(true);

    const during = await scrape(test);
    expect(sample(during, 'order_pipeline_courier_pool_slots')).toBe(1);
    expect(sample(during, 'order_pipeline_courier_pool_slots_in_use')).toBe(1);
    expect(sample(during, 'order_pipeline_courier_pool_waiters')).toBe(1);
    expect(sample(during, 'order_pipeline_steps_in_flight')).toBe(2);

    courierDone.resolve();
    expect((await first).statusCode).toBe(200);
    expect((await second).statusCode).toBe(200);
    const after = await scrape(test);
    expect(sample(after, 'order_pipeline_courier_pool_slots_in_use')).toBe(0);
    expect(sample(after, 'order_pipeline_steps_in_flight')).toBe(0);
    expect(sample(after, 'order_pipeline_courier_wait_seconds_count{result="acquired"}')).toBe(2);
    expect(sample(after, 'order_pipeline_orders_total{outcome="ok",kind="none"}')).toBe(2);
  });

  it('counts orders refused by admission control, and the orders in flight', async () => {
    const courierDone = deferred();
    const steps = courierHolding(() => courierDone.promise);
    const test = build({ maxInflightOrders: 1, steps });
    const admitted = test.app.inject({ method: 'POST', url: '/order', payload: quickOrder });
    await expect.poll(() => test.service.courierPool.inUse).toBe(1);
    const refused = await test.app.inject({
      method: 'POST',
      url: '/order',
      payload: { ...quickOrder, order_id: 'o-refused' },
    });
    expect(refused.statusCode).toBe(503);

    const during = await scrape(test);
    expect(sample(during, 'order_pipeline_orders_rejected_total{kind="overloaded"}')).toBe(1);
    expect(sample(during, 'order_pipeline_orders_rejected_total{kind="shutting_down"}')).toBe(0);
    expect(sample(during, 'order_pipeline_orders_in_flight')).toBe(1);
    courierDone.resolve();
    expect((await admitted).statusCode).toBe(200);
    expect(sample(await scrape(test), 'order_pipeline_orders_in_flight')).toBe(0);
  });

  it('includes the default process metrics when asked', async () => {
    const test = build({ defaultMetrics: true });
    const text = await scrape(test);
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    // Those that walk every connection on each scrape are left out.
    expect(text).not.toMatch(/^nodejs_active_(handles|resources)/m);
    if (process.platform === 'linux') {
      const fds = sample(text, 'process_open_fds');
      expect(fds, 'read off the event loop').toBeGreaterThan(2);
      expect(text.match(/^process_open_fds /gm)).toHaveLength(1);
    }
  });

  it('is absent when metrics are off, and orders still run', async () => {
    const test = build({ metrics: false, dashboard: false });
    expect(test.observability.metrics).toBeUndefined();
    const response = await test.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(404);
    const order = await test.app.inject({ method: 'POST', url: '/order', payload: quickOrder });
    expect(order.statusCode).toBe(200);
  });

  it('keeps one registry per app, so two apps count separately', async () => {
    const first = buildObservedApp();
    const second = buildObservedApp();
    try {
      await first.app.inject({ method: 'POST', url: '/order', payload: quickOrder });
      const series = 'order_pipeline_orders_total{outcome="ok",kind="none"}';
      expect(sample(await scrape(first), series)).toBe(1);
      expect(sample(await scrape(second), series)).toBe(0);
    } finally {
      await first.app.close();
      await second.app.close();
    }
  });
});

describe('ledger metrics', () => {
  it('count compensations by step and result, operator flags and recovered orders', async () => {
    const test = build();
    const metrics = test.observability.metrics;
    if (metrics === undefined) throw new Error('metrics are on by default');
    metrics.recordCompensation('payment', 'compensation_failed');
    metrics.recordCompensation('payment', 'compensated');
    metrics.recordCompensation('payment', 'compensated');
    metrics.recordOperatorFlag('vendor');
    metrics.recordRecovery();

    const text = await scrape(test);
    const got = (series: string): number | undefined => sample(text, series);
    expect(got('order_pipeline_compensations_total{step="payment",result="compensated"}')).toBe(2);
    expect(
      got('order_pipeline_compensations_total{step="payment",result="compensation_failed"}'),
    ).toBe(1);
    expect(got('order_pipeline_operator_flags_total{step="vendor"}')).toBe(1);
    expect(got('order_pipeline_orders_recovered_total')).toBe(1);
  });
});
