import { describe, expect, it } from 'vitest';
import { isPromiseLike } from '../../src/core/is-promise-like.js';

describe('isPromiseLike', () => {
  const thenableFunction = Object.assign(() => undefined, { then: () => undefined });
  it.each([
    ['a promise', Promise.resolve(), true],
    ['a thenable object', { then: () => undefined }, true],
    ['a thenable function', thenableFunction, true],
    ['undefined', undefined, false],
    ['null', null, false],
    ['a number', 42, false],
    ['an object whose then is not a function', { then: 1 }, false],
    ['a plain function', () => undefined, false],
  ])('%s: %s', (_, value, want) => {
    expect(isPromiseLike(value)).toBe(want);
  });
});
