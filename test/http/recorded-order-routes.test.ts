import { afterEach, describe, expect, it } from 'vitest';
import type { Order } from '../../src/order/order.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { gatedStep } from '../helpers.js';
import { closeInstantApps, injectOrder, instantApp } from './support.js';

// GET /order/:order_id: a run as recorded, in the service's shape.

afterEach(closeInstantApps);

describe('GET /order/:order_id', () => {
  it('answers 404 JSON for an unknown order', async () => {
    const { app } = instantApp();
    const answer = await app.inject({ url: '/order/nope' });
    expect(answer.statusCode).toBe(404);
    expect(answer.json()).toStrictEqual({
      status: 'error',
      error: { kind: 'not_found', message: 'no such order' },
    });
  });

  it('returns the recorded run with its steps and timestamps', async () => {
    const { app } = instantApp();
    await injectOrder(app, { order_id: 'g-1', amount: 1 }, 'k-g');
    const recorded = (await app.inject({ url: '/order/g-1' })).json<Record<string, unknown>>();
    expect(recorded).toMatchObject({
      order_id: 'g-1',
      idempotency_key: 'k-g',
      state: 'finished',
      status: 'ok',
      attempt: 1,
      needs_operator: false,
    });
    expect(recorded['run_id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(recorded['created_at']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(recorded['finished_at']).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('shows a run still running with each step running', async () => {
    const payment = gatedStep<Order>();
    const steps = () => [payment.step];
    const { app } = instantApp({ steps });
    const running = injectOrder(app, { order_id: 'g-2', amount: 1 });
    await payment.started.promise;
    expect((await app.inject({ url: '/order/g-2' })).json()).toMatchObject({
      state: 'running',
      status: 'running',
      steps: [{ name: 'payment', status: 'running' }],
    });
    payment.gate.resolve();
    await running;
  });

  it('shows each step with the live state of its compensation, and a flag for an operator', async () => {
    const store = new MemoryOrderStore();
    const at = Date.parse('2026-12-02T01:16:14.404Z');
    await store.begin({
      runId: 'run-3',
      orderId: 'g-3',
      order: { id: 'g-3', amount: 1 },
      owner: 'instance-a',
      leaseUntil: at + 15_000,
      now: at,
    });
    await store.finish({
      runId: 'run-3',
      owner: 'instance-a',
      outcome: {
        status: 'error',
        steps: [
          { name: 'payment', status: 'ok', durationMs: 150.7, compensation: 'pending' },
          { name: 'vendor', status: 'ok', durationMs: 200, compensation: 'pending' },
          {
            name: 'courier',
            status: 'error',
            durationMs: 210,
            detail: 'no_courier',
            compensation: 'not_needed',
          },
        ],
        error: { kind: 'no_courier', message: 'no courier is available' },
      },
      compensations: [
        { name: 'payment', status: 'compensated', attempts: 1, needsOperator: false },
        {
          name: 'vendor',
          status: 'compensation_failed',
          attempts: 8,
          lastError: 'internal',
          needsOperator: true,
        },
        { name: 'courier', status: 'not_needed', attempts: 0, needsOperator: false },
      ],
      now: at + 1000,
    });
    const { app } = instantApp({ store, ownsStore: false });
    const answer = await app.inject({ url: '/order/g-3' });
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toStrictEqual({
      order_id: 'g-3',
      run_id: 'run-3',
      state: 'finished',
      status: 'error',
      attempt: 1,
      error: { kind: 'no_courier', message: 'no courier is available' },
      needs_operator: true,
      steps: [
        {
          name: 'payment',
          status: 'ok',
          duration_ms: 150,
          compensation: 'compensated',
          compensation_attempts: 1,
          needs_operator: false,
        },
        {
          name: 'vendor',
          status: 'ok',
          duration_ms: 200,
          compensation: 'compensation_failed',
          compensation_attempts: 8,
          compensation_error: 'internal',
          needs_operator: true,
        },
        {
          name: 'courier',
          status: 'error',
          duration_ms: 210,
          detail: 'no_courier',
          compensation: 'not_needed',
          compensation_attempts: 0,
          needs_operator: false,
        },
      ],
      created_at: '2026-12-02T01:16:14.404Z',
      updated_at: '2026-12-02T01:16:15.404Z',
      finished_at: '2026-12-02T01:16:15.404Z',
    });
  });

  it('finds an order whose id has the longest allowed length', async () => {
    const { app } = instantApp();
    const id = 'x'.repeat(128);
    await injectOrder(app, { order_id: id, amount: 1 });
    const answer = await app.inject({ url: `/order/${id}` });
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toMatchObject({ order_id: id, state: 'finished' });
  });

  it.each([
    ['an id over 128 characters', `/order/${'x'.repeat(129)}`, /order_id/],
    ['an id longer than the router takes', `/order/${'x'.repeat(5000)}`, /URL is not valid/],
    ['an id that is not valid percent-encoding', '/order/%E0%A4%A', /URL is not valid/],
  ])('answers 400 bad_request in the service shape for %s', async (_case, url, message) => {
    const { app } = instantApp();
    const answer = await app.inject({ url });
    expect(answer.statusCode).toBe(400);
    const body = answer.json<{ status: string; error: { kind: string; message: string } }>();
    expect(body.status).toBe('error');
    expect(body.error.kind).toBe('bad_request');
    expect(body.error.message).toMatch(message);
    expect(answer.body).not.toContain('xxxxxxxxxx');
  });
});
