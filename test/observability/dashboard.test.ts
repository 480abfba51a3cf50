import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import type { DashboardState } from '../../src/http/dashboard/dashboard-routes.js';
import { RecentOrders } from '../../src/observability/recent-orders.js';
import type { OrderRecord } from '../../src/observability/order-record.js';
import {
  buildObservedApp,
  failingOrder,
  quickOrder,
  type ObservedTestApp,
} from './observed-app.js';

const built: ObservedTestApp[] = [];
afterEach(async () => {
  for (const test of built.splice(0)) await test.app.close();
});

function build(options: Parameters<typeof buildObservedApp>[0] = {}): ObservedTestApp {
  const test = buildObservedApp({ metrics: false, ...options });
  built.push(test);
  return test;
}

/** fakeClock moves the clock the orders are timed on by hand (timers stay real). */
function fakeClock(): void {
  vi.useFakeTimers({ toFake: ['performance'] });
  onTestFinished(() => {
    vi.useRealTimers();
  });
}

async function state(test: ObservedTestApp): Promise<DashboardState> {
  const response = await test.app.inject({ method: 'GET', url: '/dashboard/state' });
  expect(response.statusCode).toBe(200);
  return response.json<DashboardState>();
}

describe('dashboard', () => {
  it('serves the page, its script and its style, locked to its own origin', async () => {
    const test = build();
    const page = await test.app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('id="timeline"');
    for (const [url, type] of [
      ['/dashboard/dashboard.js', 'text/javascript; charset=utf-8'],
      ['/dashboard/dashboard.css', 'text/css; charset=utf-8'],
    ] as const) {
      const asset = await test.app.inject({ method: 'GET', url });
      expect(asset.statusCode, url).toBe(200);
      expect(asset.headers['content-type'], url).toBe(type);
    }
  });

  it('reports the pool, the outcomes by kind and a timeline row per order, newest first', async () => {
    fakeClock();
    const test = build({ courierPoolSize: 3 });
    await test.app.inject({ method: 'POST', url: '/order', payload: quickOrder });
    await test.app.inject({ method: 'POST', url: '/order', payload: failingOrder });

    const got = await state(test);
    expect(got.pool).toEqual({ size: 3, in_use: 0, waiting: 0 });
    expect(got.steps_in_flight).toBe(0);
    expect(got.orders_total).toBe(2);
    expect(got.by_kind).toEqual({ ok: 1, payment_declined: 1 });
    expect(got.timeline.map((row) => row.order_id)).toEqual(['o-fail', 'o-ok']);

    const [failed, ok] = got.timeline;
    expect(failed!.status).toBe('error');
    expect(failed!.kind).toBe('payment_declined');
    expect(failed!.steps.map((step) => [step.name, step.status])).toEqual([
      ['payment', 'error'],
      ['vendor', 'canceled'],
      ['courier', 'canceled'],
    ]);
    // On a clock that does not move, everything happened at 0 ms: the payment failed at once,
    // the others were canceled then, and the courier got its slot without waiting.
    expect(failed!.canceled_at_ms, 'canceled at').toBe(0);
    expect(failed!.duration_ms, 'duration').toBe(0);
    expect(
      failed!.steps.map((step) => step.end_ms),
      'step ends',
    ).toEqual([0, 0, 0]);
    expect(failed!.steps[2]!.wait_ms, 'courier wait').toBe(0);

    expect(ok!.status).toBe('ok');
    expect(ok!.canceled_at_ms).toBeUndefined();
    expect(ok!.steps.every((step) => step.status === 'ok')).toBe(true);
  });

  it('reports refusals, the rate counted by the server, and runs needing attention', async () => {
    fakeClock();
    const test = build({ compensationMaxAttempts: 1 });
    test.service.admission.close();
    await test.app.inject({ method: 'POST', url: '/order', payload: quickOrder });
    let got = await state(test);
    expect(got.refused).toEqual({ overloaded: 0, shutting_down: 1 });
    expect(got.operator_actions).toBe(false);

    const open = build({ compensationMaxAttempts: 1 });
    await open.app.inject({
      method: 'POST',
      url: '/order',
      payload: {
        ...failingOrder,
        fail_step: 'courier',
        delay_ms: { payment: 0, vendor: 0, courier: 1 },
        fail_compensation: { payment: 5 },
      },
    });
    await open.service.ledger.idle();
    expect((await state(open)).orders_per_second, 'during the second it settled in').toBe(0);
    vi.advanceTimersByTime(1000);
    got = await state(open);
    expect(got.orders_per_second, 'once that second is over: 1 order in 5 s').toBe(0.2);
    expect(got.attention).toHaveLength(1);
    // Each run as GET /order/:order_id shows it: one spelling of a compensation on the wire.
    const recorded = await open.app.inject({ method: 'GET', url: '/order/o-fail' });
    expect(got.attention[0]).toStrictEqual(recorded.json());
    expect(got.attention[0]).toMatchObject({
      order_id: 'o-fail',
      error: { kind: 'no_courier' },
      needs_operator: true,
      steps: [
        {
          name: 'payment',
          compensation: 'compensation_failed',
          compensation_attempts: 1,
          needs_operator: true,
        },
        { name: 'vendor', compensation: 'compensated', needs_operator: false },
        { name: 'courier', compensation: 'not_needed', needs_operator: false },
      ],
    });
    await open.app.close();
  });

  it('serves a favicon', async () => {
    const test = build();
    const icon = await test.app.inject({ method: 'GET', url: '/favicon.ico' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['content-type']).toBe('image/svg+xml');
    expect(icon.body).toContain('<svg');
  });

  it('is absent when the dashboard is off', async () => {
    const test = build({ dashboard: false });
    expect((await test.app.inject({ method: 'GET', url: '/' })).statusCode).toBe(404);
    expect((await test.app.inject({ method: 'GET', url: '/dashboard/state' })).statusCode).toBe(
      404,
    );
  });
});

describe('RecentOrders', () => {
  const record = (orderId: string, kind?: 'timeout'): OrderRecord => ({
    orderId,
    startedAt: 0,
    durationMs: 1,
    outcome:
      kind === undefined
        ? { status: 'ok', steps: [] }
        : { status: 'error', steps: [], error: { kind, message: 'late' } },
    canceledAtMs: undefined,
    courierWait: undefined,
  });

  it('keeps only the last `capacity` orders but counts every one', () => {
    const recent = new RecentOrders(3);
    for (let i = 0; i < 7; i++) recent.record(record(`o${i}`, i % 2 === 0 ? undefined : 'timeout'));
    expect(recent.timeline().map((row) => row.order_id)).toEqual(['o6', 'o5', 'o4']);
    expect(recent.total).toBe(7);
    expect(recent.byKind()).toEqual({ ok: 4, timeout: 3 });
  });

  it.each([
    { now: 14_999, seconds: '9-13', want: 3 / 5 },
    { now: 15_000, seconds: '10-14', want: 6 / 5 },
    { now: 15_999, seconds: '10-14', want: 6 / 5 },
    { now: 16_000, seconds: '11-15', want: 5 / 5 },
    { now: 19_999, seconds: '14-18', want: 4 / 5 },
    { now: 20_000, seconds: '15-19', want: 1 / 5 },
    { now: 21_000, seconds: '16-20', want: 0 },
  ])('perSecond at $now ms counts the orders settled in seconds $seconds', ({ now, want }) => {
    const recent = new RecentOrders(100);
    // Settled per second: 10 → 2, 11 → 1, 14 → 3, 15 → 1.
    for (const ms of [10_000, 10_999, 11_500, 14_000, 14_100, 14_200, 15_000]) {
      recent.record({ ...record('o'), startedAt: ms - 1, durationMs: 1 });
    }
    expect(recent.perSecond(now)).toBe(want);
  });

  it('rejects a capacity that is not a positive integer', () => {
    for (const capacity of [0, -1, 1.5, Number.NaN]) {
      expect(() => new RecentOrders(capacity), String(capacity)).toThrow(RangeError);
    }
  });
});
