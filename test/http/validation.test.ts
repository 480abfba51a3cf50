import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/http/app.js';
import type { OrderService } from '../../src/service/order-service.js';
import { buildTestApp } from '../helpers.js';

let app: App;
let service: OrderService;

beforeEach(() => {
  ({ app, service } = buildTestApp());
});

afterEach(async () => {
  await app.close();
});

function badRequest(message: string, orderId?: string): unknown {
  return orderId === undefined
    ? { status: 'error', error: { kind: 'bad_request', message } }
    : { status: 'error', order_id: orderId, error: { kind: 'bad_request', message } };
}

const valid = { order_id: 'order-1', amount: 1999 };

describe('POST /order rejects bad input with 400 bad_request naming the problem', () => {
  // Each case names the order_id its error carries: the body's, when it had a readable one.
  const cases: { name: string; payload: string; message: string; orderId?: string }[] = [
    { name: 'invalid JSON', payload: '{"order_id": "a", ', message: 'body is not valid JSON' },
    {
      name: 'more than one JSON value',
      payload: `${JSON.stringify(valid)} ${JSON.stringify(valid)}`,
      message: 'body is not valid JSON',
    },
    { name: 'an empty body', payload: '', message: 'body must not be empty' },
    { name: 'a body that is an array', payload: '[]', message: 'body must be object' },
    { name: 'a body that is a string', payload: '"order"', message: 'body must be object' },
    { name: 'a body that is null', payload: 'null', message: 'body must be object' },
    { name: 'a body that is a number', payload: '42', message: 'body must be object' },
    {
      name: 'an unknown top-level field',
      payload: JSON.stringify({ ...valid, coupon: 'FREE' }),
      orderId: 'order-1',
      message: 'body has an unknown field "coupon"',
    },
    {
      name: 'an unknown field inside delay_ms',
      payload: JSON.stringify({ ...valid, delay_ms: { payment: 1, refund: 2 } }),
      orderId: 'order-1',
      message: 'body/delay_ms has an unknown field "refund"',
    },
    {
      name: 'a missing order_id',
      payload: JSON.stringify({ amount: 1 }),
      message: "body must have required property 'order_id'",
    },
    {
      name: 'an empty order_id',
      payload: JSON.stringify({ ...valid, order_id: '' }),
      message: 'body/order_id must NOT have fewer than 1 characters',
    },
    {
      name: 'an order_id longer than 128 characters',
      payload: JSON.stringify({ ...valid, order_id: 'x'.repeat(129) }),
      message: 'body/order_id must NOT have more than 128 characters',
    },
    {
      name: 'an order_id that is not a string',
      payload: JSON.stringify({ ...valid, order_id: 17 }),
      message: 'body/order_id must be string',
    },
    {
      name: 'an order_id with a newline',
      payload: JSON.stringify({ ...valid, order_id: 'order\n1' }),
      message: 'body/order_id must not contain control characters',
    },
    {
      name: 'an order_id with a NUL',
      payload: JSON.stringify({ ...valid, order_id: 'order\u00001' }),
      message: 'body/order_id must not contain control characters',
    },
    {
      name: 'an order_id with DEL',
      payload: JSON.stringify({ ...valid, order_id: 'order\u007f' }),
      message: 'body/order_id must not contain control characters',
    },
    {
      name: 'an order_id with a C1 control character',
      payload: JSON.stringify({ ...valid, order_id: '\u0085order' }),
      message: 'body/order_id must not contain control characters',
    },
    {
      name: 'a missing amount',
      payload: JSON.stringify({ order_id: 'a' }),
      orderId: 'a',
      message: "body must have required property 'amount'",
    },
    {
      name: 'a zero amount',
      payload: JSON.stringify({ ...valid, amount: 0 }),
      orderId: 'order-1',
      message: 'body/amount must be >= 1',
    },
    {
      name: 'a negative amount',
      payload: JSON.stringify({ ...valid, amount: -5 }),
      orderId: 'order-1',
      message: 'body/amount must be >= 1',
    },
    {
      name: 'a non-integer amount',
      payload: JSON.stringify({ ...valid, amount: 19.99 }),
      orderId: 'order-1',
      message: 'body/amount must be integer',
    },
    {
      name: 'an amount given as a string',
      payload: JSON.stringify({ ...valid, amount: '1999' }),
      orderId: 'order-1',
      message: 'body/amount must be integer',
    },
    {
      name: 'an amount of null',
      payload: JSON.stringify({ ...valid, amount: null }),
      orderId: 'order-1',
      message: 'body/amount must be integer',
    },
    {
      name: 'an amount above Number.MAX_SAFE_INTEGER',
      payload: '{"order_id":"a","amount":9007199254740992}',
      orderId: 'a',
      message: 'body/amount must be <= 9007199254740991',
    },
    {
      name: 'an unknown fail_step',
      payload: JSON.stringify({ ...valid, fail_step: 'refund' }),
      orderId: 'order-1',
      message: 'body/fail_step must be equal to one of the allowed values',
    },
    {
      name: 'a delay_ms that is not an object',
      payload: JSON.stringify({ ...valid, delay_ms: 100 }),
      orderId: 'order-1',
      message: 'body/delay_ms must be object',
    },
    {
      name: 'a delay_ms value that is not an integer',
      payload: JSON.stringify({ ...valid, delay_ms: { payment: 1.5 } }),
      orderId: 'order-1',
      message: 'body/delay_ms/payment must be integer',
    },
    {
      name: 'a delay_ms value given as a string',
      payload: JSON.stringify({ ...valid, delay_ms: { courier: '10' } }),
      orderId: 'order-1',
      message: 'body/delay_ms/courier must be integer',
    },
    {
      name: 'a negative delay_ms value',
      payload: JSON.stringify({ ...valid, delay_ms: { vendor: -1 } }),
      orderId: 'order-1',
      message: 'body/delay_ms/vendor must be >= 0',
    },
    {
      name: 'a delay_ms value above 60000',
      payload: JSON.stringify({ ...valid, delay_ms: { courier: 60_001 } }),
      orderId: 'order-1',
      message: 'body/delay_ms/courier must be <= 60000',
    },
  ];

  it.each(cases)('$name', async ({ payload, message, orderId }) => {
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toStrictEqual(badRequest(message, orderId));
    // Rejected input never reaches the pipeline.
    expect(service.tracker.started).toBe(0);
  });

  it('accepts the boundaries: 128-character order_id, MAX_SAFE_INTEGER amount, delays 0 and 60000', async () => {
    // A 60000 ms delay is valid; the failing payment ends the order before it elapses.
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      payload: {
        order_id: 'é'.repeat(128),
        amount: Number.MAX_SAFE_INTEGER,
        fail_step: 'payment',
        delay_ms: { payment: 0, vendor: 60_000, courier: 60_000 },
      },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json<{ error: unknown }>().error).toStrictEqual({
      kind: 'payment_declined',
      message: 'payment was declined',
    });
  });
});

describe('requests the service does not serve are answered with JSON errors', () => {
  it.each(['GET', 'PUT', 'DELETE', 'PATCH'] as const)(
    '%s /order is 405 with Allow: POST',
    async (method) => {
      const response = await app.inject({ method, url: '/order' });
      expect(response.statusCode).toBe(405);
      expect(response.headers['allow']).toBe('POST');
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      expect(response.json()).toStrictEqual({
        status: 'error',
        error: { kind: 'method_not_allowed', message: 'use POST for /order' },
      });
    },
  );

  it('an unknown path is 404', async () => {
    const response = await app.inject({ method: 'POST', url: '/orders', payload: valid });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toStrictEqual({
      status: 'error',
      error: { kind: 'not_found', message: 'no such route' },
    });
  });

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'application/xml'])(
    'a %s body is 415',
    async (contentType) => {
      const response = await app.inject({
        method: 'POST',
        url: '/order',
        headers: { 'content-type': contentType },
        payload: JSON.stringify(valid),
      });
      expect(response.statusCode).toBe(415);
      expect(response.json()).toStrictEqual({
        status: 'error',
        error: {
          kind: 'unsupported_media_type',
          message: 'content type must be application/json',
        },
      });
      expect(service.tracker.started).toBe(0);
    },
  );

  it('a body without a content type is 415', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      payload: JSON.stringify(valid),
    });
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.statusCode).toBe(415);
    expect(response.json<{ error: { kind: string } }>().error.kind).toBe('unsupported_media_type');
  });

  it('application/json with a charset parameter is accepted', async () => {
    const { app: instantApp } = buildTestApp({ delays: { payment: 0, vendor: 0, courier: 0 } });
    try {
      const response = await instantApp.inject({
        method: 'POST',
        url: '/order',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        payload: JSON.stringify(valid),
      });
      expect(response.statusCode).toBe(200);
      expect(response.json<{ status: string }>().status).toBe('ok');
    } finally {
      await instantApp.close();
    }
  });

  it('a POST without a body is 400', async () => {
    const response = await app.inject({ method: 'POST', url: '/order' });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toStrictEqual(badRequest('body must be object'));
  });

  it('a body over 64 KiB is 413', async () => {
    const payload = JSON.stringify({ ...valid, order_id: 'x'.repeat(64 * 1024) });
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    expect(response.statusCode).toBe(413);
    expect(response.json()).toStrictEqual({
      status: 'error',
      error: { kind: 'payload_too_large', message: 'body must not be larger than 65536 bytes' },
    });
    expect(service.tracker.started).toBe(0);
  });

  it('a body of exactly 64 KiB is read and validated, not refused as too large', async () => {
    const skeleton = JSON.stringify({ ...valid, order_id: '' });
    const payload = JSON.stringify({
      ...valid,
      order_id: 'x'.repeat(64 * 1024 - skeleton.length),
    });
    expect(Buffer.byteLength(payload)).toBe(64 * 1024);
    const response = await app.inject({
      method: 'POST',
      url: '/order',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toStrictEqual(
      badRequest('body/order_id must NOT have more than 128 characters'),
    );
  });

  it('GET /healthz is 200', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toStrictEqual({ status: 'ok' });
  });
});
