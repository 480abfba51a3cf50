import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import type { Order } from '../../src/order/order.js';
import { capturingLogger, gatedStep, testService } from '../helpers.js';
import { settledAfterMs } from '../http/support.js';
import { failingOrder } from './observed-app.js';

describe('logs', () => {
  it('each request writes one line when it completes, with the order it answered', async () => {
    // On a fake clock, so the order's time is exact: the payment fails at 30 ms.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const { logger, lines } = capturingLogger();
    const app = buildApp({ service: testService(), logger });
    try {
      const response = app.inject({
        method: 'POST',
        url: '/order',
        payload: { ...failingOrder, delay_ms: { ...failingOrder.delay_ms, payment: 30 } },
      });
      expect(await settledAfterMs(response), 'answered after ms').toBe(30);
      expect((await response).statusCode).toBe(400);
    } finally {
      await app.close();
    }
    const completed = lines.filter((line) => line.msg === 'request completed');
    expect(completed).toHaveLength(1);
    const line = completed[0]!;
    expect(line).toMatchObject({
      level: 30,
      order_id: 'o-fail',
      method: 'POST',
      url: '/order',
      status: 400,
      outcome: 'error',
      kind: 'payment_declined',
      steps: {
        payment: { status: 'error', detail: 'payment_declined', duration_ms: 30 },
        vendor: { status: 'canceled', duration_ms: 30 },
        courier: { status: 'canceled', duration_ms: 30 },
      },
    });
    expect(typeof line.reqId).toBe('string');
    expect(line['duration_ms'], 'order ms').toBe(30);
    // The framework times the response on its own clock, which the test does not move.
    expect(line['response_time_ms'], 'response ms').toBeGreaterThan(0);
    // The framework's own per-request lines are replaced by this one.
    expect(lines.filter((l) => l.msg === 'incoming request')).toEqual([]);
  });

  it('a request that is not an order writes its line too, without order fields', async () => {
    const { logger, lines } = capturingLogger();
    const app = buildApp({ service: testService(), logger });
    try {
      await app.inject({ url: '/healthz' });
    } finally {
      await app.close();
    }
    const completed = lines.filter((line) => line.msg === 'request completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ url: '/healthz', status: 200 });
    expect(completed[0]?.['outcome']).toBeUndefined();
  });

  it('refusals for overload are counted into one line, not a line each', async () => {
    const { logger, lines } = capturingLogger();
    // The first order holds the only place until the test opens its gate.
    const payment = gatedStep<Order>();
    const steps = () => [payment.step];
    const service = testService({ maxInflightOrders: 1, steps });
    const app = buildApp({ service, logger });
    const order = (id: string) => ({
      method: 'POST' as const,
      url: '/order',
      payload: { order_id: id, amount: 1 },
    });
    try {
      const held = app.inject(order('held'));
      await payment.started.promise;
      const refused = await Promise.all([
        app.inject(order('refused-1')),
        app.inject(order('refused-2')),
      ]);
      expect(refused.map((r) => r.statusCode)).toEqual([503, 503]);
      payment.gate.resolve();
      expect((await held).statusCode).toBe(200);
    } finally {
      await app.close();
    }
    const completed = lines.filter((line) => line.msg === 'request completed');
    expect(completed.map((line) => line.order_id)).toEqual(['held']);
    const summaries = lines.filter((line) => line.msg === 'orders refused as overloaded');
    expect(summaries, 'written when the app closes').toHaveLength(1);
    expect(summaries[0]).toMatchObject({ level: 40, kind: 'overloaded', refused: 2 });
  });

  it('writes no request line when info is off', async () => {
    const { logger, lines } = capturingLogger('warn');
    const app = buildApp({ service: testService(), logger });
    try {
      await app.inject({ method: 'POST', url: '/order', payload: failingOrder });
    } finally {
      await app.close();
    }
    expect(lines.filter((line) => line.msg === 'request completed')).toEqual([]);
  });
});
