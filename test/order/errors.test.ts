import { describe, expect, it } from 'vitest';
import { OrderError, errorKinds, kindOf, publicMessage } from '../../src/order/errors.js';

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

describe('publicMessage', () => {
  it('is an OrderError’s own message', () => {
    expect(publicMessage(new OrderError('payment_declined', 'card expired'))).toBe('card expired');
  });

  it.each([
    [new Error('SELECT * FROM secrets'), 'internal error'],
    [
      new DOMException('internal detail', 'TimeoutError'),
      'the order did not complete before its deadline',
    ],
    [new DOMException('internal detail', 'AbortError'), 'the order was canceled'],
  ])('never leaks the text of %s', (error, want) => {
    expect(publicMessage(error)).toBe(want);
  });

  it('has a message for every kind', () => {
    for (const kind of errorKinds) {
      const message = publicMessage(
        kind === 'internal' ? new Error('hidden') : new OrderError(kind, `${kind} text`),
      );
      expect(message.length, kind).toBeGreaterThan(0);
    }
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
