import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/http/app.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import { buildTestApp } from '../helpers.js';

// Random bodies go through the real app. The steps resolve at once and never fail, so any
// 5xx can only come from the HTTP edge mishandling input, which is what is under test.

let app: App;

beforeAll(() => {
  const instant = (name: string): Step<Order> => ({ name, run: () => Promise.resolve() });
  ({ app } = buildTestApp({
    steps: () => [instant('payment'), instant('vendor'), instant('courier')],
  }));
});

afterAll(async () => {
  await app.close();
});

/** hasControlCharacter says whether `text` holds a C0 or C1 control character or DEL. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}
const stepNames = ['payment', 'vendor', 'courier'];

/** isValidOrder is an independent statement of the body rules of POST /order. */
function isValidOrder(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const body = value as Record<string, unknown>;
  const known = ['order_id', 'amount', 'fail_step', 'delay_ms'];
  if (Object.keys(body).some((key) => !known.includes(key))) return false;
  const { order_id, amount, fail_step, delay_ms } = body;
  if (typeof order_id !== 'string') return false;
  // Characters are code points: an emoji is one character, though two UTF-16 units.
  const characters = Array.from(order_id).length;
  if (characters < 1 || characters > 128) return false;
  if (hasControlCharacter(order_id)) return false;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 1) return false;
  if (fail_step !== undefined && !stepNames.includes(fail_step as string)) return false;
  if (delay_ms !== undefined) {
    if (typeof delay_ms !== 'object' || delay_ms === null || Array.isArray(delay_ms)) return false;
    for (const [key, delay] of Object.entries(delay_ms)) {
      if (!stepNames.includes(key)) return false;
      if (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0 || delay > 60_000) {
        return false;
      }
    }
  }
  return true;
}

async function post(payload: string, contentType = 'application/json') {
  const response = await app.inject({
    method: 'POST',
    url: '/order',
    headers: { 'content-type': contentType },
    payload,
  });
  let body: unknown;
  expect(
    () => (body = JSON.parse(response.body) as unknown),
    `JSON body for ${payload}`,
  ).not.toThrow();
  const { status, error } = body as {
    status: unknown;
    error?: { kind: unknown; message: unknown };
  };
  expect(response.statusCode, `status for ${payload}`).toBeLessThan(500);
  expect(['ok', 'error']).toContain(status);
  if (response.statusCode !== 200) {
    expect(typeof error?.kind).toBe('string');
    expect(typeof error?.message).toBe('string');
  }
  return { status: response.statusCode, body };
}

/** mostly picks `valid`, now and then `invalid`: each field sits close to the rules. */
function mostly<T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>): fc.Arbitrary<T | U> {
  return fc.oneof({ arbitrary: valid, weight: 8 }, { arbitrary: invalid, weight: 1 });
}

const delay = mostly(
  fc.integer({ min: 0, max: 60_000 }),
  fc.oneof(fc.constantFrom(-1, 60_001, 0.5, '10', null), fc.double()),
);

const nearValidOrder = fc
  .tuple(
    fc.record(
      {
        order_id: mostly(
          fc.oneof(
            fc.string({ minLength: 1, maxLength: 128 }),
            fc.constantFrom('x'.repeat(128), '🚲'.repeat(128)),
          ),
          fc.oneof(
            fc.string({ unit: 'binary', maxLength: 140 }),
            fc.constantFrom(
              '',
              'x'.repeat(129),
              '🚲'.repeat(129),
              'a\u0000b',
              '\u009f',
              'tab\there',
            ),
            fc.integer(),
            fc.constant(null),
          ),
        ),
        amount: mostly(
          fc.oneof(
            fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
            fc.constant(Number.MAX_SAFE_INTEGER),
          ),
          fc.oneof(
            fc.constantFrom(0, -1, Number.MAX_SAFE_INTEGER + 1, 2 ** 60, 1e300, 1.5, '7', true),
            fc.double(),
          ),
        ),
        fail_step: mostly(
          fc.constantFrom('payment', 'vendor', 'courier'),
          fc.oneof(fc.constantFrom('Payment', '', 'refund', null), fc.integer()),
        ),
        delay_ms: mostly(
          fc.record({ payment: delay, vendor: delay, courier: delay }, { requiredKeys: [] }),
          fc.oneof(
            fc.constantFrom(null, [], 5, 'fast'),
            fc.record({ payment: delay, refund: fc.integer() }),
          ),
        ),
      },
      { requiredKeys: ['order_id', 'amount'] },
    ),
    // Now and then a required field is missing or a field outside the contract is added.
    mostly(fc.constant(undefined), fc.constantFrom('order_id', 'amount')),
    mostly(fc.constant(undefined), fc.jsonValue()),
  )
  .map(([order, missing, extra]) => {
    const body: Record<string, unknown> = Object.fromEntries(
      Object.entries(order).filter(([key]) => key !== missing),
    );
    if (extra !== undefined) body['extra'] = extra;
    return body;
  });

describe('random bodies never yield a 5xx, and every answer is JSON with status ok or error', () => {
  it('near-valid orders are accepted exactly when they follow the rules', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(nearValidOrder, async (order) => {
        const { status, body } = await post(JSON.stringify(order));
        const want = isValidOrder(JSON.parse(JSON.stringify(order)));
        expect(status, `status for ${JSON.stringify(order)}`).toBe(want ? 200 : 400);
        if (want) accepted++;
        else {
          expect((body as { error: { kind: string } }).error.kind).toBe('bad_request');
        }
      }),
      { numRuns: 600 },
    );
    // The generator must reach both sides of the rules for the comparison to mean anything.
    expect(accepted).toBeGreaterThan(100);
  });

  it('random JSON values are answered 200 or 400', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        const { status } = await post(JSON.stringify(value));
        expect([200, 400]).toContain(status);
      }),
      { numRuns: 400 },
    );
  });

  it('random strings as raw bodies are answered 400 unless they happen to be a valid order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 64 }),
          fc.json().map((json) => json.slice(0, Math.floor(json.length / 2))),
          fc.constantFrom(
            '{',
            '}',
            '{"order_id":"a","amount":1}}',
            '{"__proto__":{"x":1}}',
            '\ufeff{}',
          ),
        ),
        async (raw) => {
          const { status } = await post(raw);
          expect([200, 400]).toContain(status);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('random content types are answered without a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'application/json; charset=latin1',
          'APPLICATION/JSON',
          'application/jsonx',
          'application/vnd.api+json',
          'text/plain',
          'text/html',
          'multipart/form-data; boundary=x',
          'application/octet-stream',
        ),
        fc.json(),
        async (contentType, raw) => {
          const { status } = await post(raw, contentType);
          expect([200, 400, 415]).toContain(status);
        },
      ),
      { numRuns: 200 },
    );
  });
});
