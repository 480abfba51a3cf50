import { describe, expect, it } from 'vitest';
import {
  OrderError,
  errorKinds,
  kindMessage,
  kindOf,
  publicMessage,
  type ErrorKind,
} from '../../src/order/errors.js';

describe('kindOf', () => {
  it.each([
    ['an OrderError', new OrderError('no_courier', 'none free'), 'no_courier'],
    ['a DOMException TimeoutError', new DOMException('t', 'TimeoutError'), 'timeout'],
    ['a DOMException AbortError', new DOMException('a', 'AbortError'), 'canceled'],
    ['the reason of AbortSignal.abort()', AbortSignal.abort().reason, 'canceled'],
    ['a plain Error', new Error('boom'), 'internal'],
    ['a TypeError', new TypeError('bad'), 'internal'],
    ['a string', 'boom', 'internal'],
    ['undefined', undefined, 'internal'],
    ['an object with a kind field', { kind: 'timeout' }, 'internal'],
  ])('%s is %s', (_, error, want) => {
    expect(kindOf(error)).toBe(want);
  });

  it('every kind survives a round trip through OrderError', () => {
    for (const kind of errorKinds) {
      expect(kindOf(new OrderError(kind, 'x')), kind).toBe(kind);
    }
  });
});

describe('kindMessage', () => {
  it.each<[ErrorKind, string]>([
    // The two the README's examples show a client.
    ['payment_declined', 'payment was declined'],
    ['vendor_unavailable', 'vendor is unavailable'],
    ['internal', 'internal error'],
    ['timeout', 'the order did not complete before its deadline'],
    ['canceled', 'the order was canceled'],
  ])('of %s reads "%s"', (kind, want) => {
    expect(kindMessage(kind)).toBe(want);
  });

  it.each(errorKinds.map((kind) => [kind]))(
    'of %s is one short line of plain words: no code, path, value or identifier',
    (kind) => {
      const message = kindMessage(kind);
      expect(message, 'characters').toMatch(/^[A-Za-z][A-Za-z -]*(, [A-Za-z -]+)?$/);
      expect(message.length, 'length').toBeLessThanOrEqual(80);
    },
  );

  it('is different for every kind', () => {
    const messages = errorKinds.map(kindMessage);
    expect(new Set(messages).size, `messages: ${messages.join(' | ')}`).toBe(errorKinds.length);
  });
});

describe('publicMessage', () => {
  it('is an OrderError’s own message', () => {
    expect(publicMessage(new OrderError('payment_declined', 'card expired'))).toBe('card expired');
  });

  it.each([
    ['a plain Error', new Error('SELECT * FROM secrets'), 'internal'],
    ['a TypeError', new TypeError('cannot read x of undefined'), 'internal'],
    ['a string', 'stack at /srv/app.js:1', 'internal'],
    ['a DOMException TimeoutError', new DOMException('internal detail', 'TimeoutError'), 'timeout'],
    ['a DOMException AbortError', new DOMException('internal detail', 'AbortError'), 'canceled'],
  ] as const)('of %s is the message of kind %s, never its own text', (_, error, kind) => {
    expect(publicMessage(error)).toBe(kindMessage(kind));
  });
});

describe('OrderError', () => {
  it('keeps its kind, its name and its cause', () => {
    const cause = new Error('upstream');
    const error = new OrderError('vendor_unavailable', 'vendor down', { cause });
    expect([error.kind, error.name, error.message, error.cause]).toEqual([
      'vendor_unavailable',
      'OrderError',
      'vendor down',
      cause,
    ]);
    expect(error).toBeInstanceOf(Error);
  });
});
