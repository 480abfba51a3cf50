import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import type { DashboardState } from '../../src/http/dashboard/dashboard-routes.js';
import { RecentOrders } from '../../src/observability/recent-orders.js';
import type { OrderRecord } from '../../src/observability/order-record.js';
import type { Order } from '../../src/order/order.js';
import { capturingLogger, gatedStep } from '../helpers.js';
import {
  buildObservedApp,
  failingOrder,
  observeService,
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
    expect(got.attention_count).toEqual({ flagged: 1, open: 0, more: false });
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
          // What the attempt said, as the log says it, not only its kind (`internal`).
          compensation_error: 'refunding the payment failed (attempt 1)',
          needs_operator: true,
        },
        { name: 'vendor', compensation: 'compensated', needs_operator: false },
        { name: 'courier', compensation: 'not_needed', needs_operator: false },
      ],
    });
    await open.app.close();
  });

  it('shows overload while admission refuses, and counts the refusals apart from the orders', async () => {
    fakeClock();
    const payment = gatedStep<Order>();
    const test = build({ maxInflightOrders: 1, steps: () => [payment.step] });
    const order = (id: string) => ({
      method: 'POST' as const,
      url: '/order',
      payload: { order_id: id, amount: 1 },
    });
    let got = await state(test);
    expect(got.overloaded, 'before any refusal').toBe(false);

    const held = test.app.inject(order('held'));
    await payment.started.promise;
    const refused = await Promise.all(['r1', 'r2', 'r3'].map((id) => test.app.inject(order(id))));
    expect(refused.map((r) => r.statusCode)).toEqual([503, 503, 503]);
    got = await state(test);
    expect(got.overloaded, 'while refusing').toBe(true);
    expect(got.refused).toEqual({ overloaded: 3, shutting_down: 0 });
    // Counted in the second they were seen in, which the last minute includes.
    expect(got.last_minute.refused).toEqual({ overloaded: 3, shutting_down: 0 });
    expect(got.last_minute.by_kind, 'refusals are not orders settled').toEqual({});
    payment.gate.resolve();
    expect((await held).statusCode).toBe(200);

    vi.advanceTimersByTime(1000);
    got = await state(test);
    expect(got.overloaded, 'a second after the last refusal').toBe(false);
    expect(got.refused_per_second, '3 refusals in the last 5 s').toBe(3 / 5);
    expect(got.series.points.at(-1)).toMatchObject({ ok: 1, errors: 0, timeouts: 0, refused: 3 });
    expect(got.last_minute.by_kind).toEqual({ ok: 1 });
  });

  it('reports the last minute by kind, timeouts apart, and the series of the last 5 minutes', async () => {
    const test = build({ requestTimeoutMs: 100 });
    const post = (payload: object) => test.app.inject({ method: 'POST', url: '/order', payload });
    const fast = { payment: 1, vendor: 1, courier: 1 };
    await post({ order_id: 'a', amount: 1, delay_ms: fast });
    await post({ order_id: 'b', amount: 1, delay_ms: fast });
    await post({ ...failingOrder, delay_ms: { ...fast, payment: 5 } });
    const late = await post({
      order_id: 'late',
      amount: 1,
      delay_ms: { payment: 5000, vendor: 1, courier: 1 },
    });
    expect(late.statusCode).toBe(504);

    const got = await state(test);
    expect(got.last_minute.seconds).toBe(60);
    expect(got.last_minute.by_kind).toEqual({ ok: 2, payment_declined: 1, timeout: 1 });
    // Four orders: the median is a fast one, the 99th percentile the one cut at 100 ms.
    expect(got.last_minute.p50_ms).toBeLessThan(50);
    expect(got.last_minute.p99_ms).toBeGreaterThanOrEqual(100 / 1.19);
    expect(got.last_minute.p99_ms).toBeLessThan(500);
    const counted = got.last_minute.latency.counts.reduce((a, b) => a + b, 0);
    expect(counted, 'every order settled is in the histogram').toBe(4);

    const { series } = got;
    expect(series.step_ms).toBe(5000);
    expect(series.points).toHaveLength(60);
    expect(series.from % 5000).toBe(0);
    expect(series.to - series.from).toBeGreaterThan(59 * 5000);
    expect(series.to - series.from).toBeLessThanOrEqual(60 * 5000);
    expect(Math.abs(got.now - series.to), 'ends at the second being counted').toBeLessThan(1000);
    // The orders settled during this second: the series shows them once it is over.
    await expect
      .poll(async () => {
        const points = (await state(test)).series.points;
        return points
          .map(({ ok, errors, timeouts }) => ({ ok, errors, timeouts }))
          .reduce((a, b) => ({
            ok: a.ok + b.ok,
            errors: a.errors + b.errors,
            timeouts: a.timeouts + b.timeouts,
          }));
      })
      .toEqual({ ok: 2, errors: 1, timeouts: 1 });
  });

  it("writes the dashboard's requests at debug: an open page does not fill the info log", async () => {
    for (const level of ['info', 'debug']) {
      const { logger, lines } = capturingLogger(level);
      const observed = observeService({});
      const app = buildApp({ ...observed, logger });
      app.addHook('onClose', () => observed.service.close());
      try {
        for (const url of ['/', '/dashboard/dashboard.js', '/dashboard/dashboard.css']) {
          expect((await app.inject({ url })).statusCode, url).toBe(200);
        }
        for (let i = 0; i < 3; i++) await app.inject({ url: '/dashboard/state' });
        await app.inject({ method: 'POST', url: '/order', payload: quickOrder });
      } finally {
        await app.close();
      }
      const completed = lines.filter((line) => line.msg === 'request completed');
      const dashboard = completed.filter((line) => line['url'] !== '/order');
      expect(
        completed.filter((line) => line['url'] === '/order').map((line) => line.level),
        `the order's line at ${level}`,
      ).toEqual([30]);
      if (level === 'info') {
        expect(dashboard, 'no dashboard line at info').toEqual([]);
      } else {
        expect(dashboard.map((line) => [line['url'], line.level])).toEqual([
          ['/', 20],
          ['/dashboard/dashboard.js', 20],
          ['/dashboard/dashboard.css', 20],
          ['/dashboard/state', 20],
          ['/dashboard/state', 20],
          ['/dashboard/state', 20],
        ]);
      }
    }
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

  it('keeps only the last `capacity` orders and failures but counts every one', () => {
    const recent = new RecentOrders(3);
    for (let i = 0; i < 7; i++) recent.record(record(`o${i}`, i % 2 === 0 ? undefined : 'timeout'));
    expect(recent.timeline().map((row) => row.order_id)).toEqual(['o6', 'o5', 'o4', 'o3', 'o1']);
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
    // The records' clock starts at the epoch: its seconds are the wall clock's.
    const recent = new RecentOrders(100, 0);
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
