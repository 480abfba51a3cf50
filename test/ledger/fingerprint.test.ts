import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, fingerprint as requestHash } from '../../src/ledger/fingerprint.js';

/** The first definition of the request hash: durable stores hold hashes made by it. */
function recordedHash(request: unknown): string {
  const canonical = (value: unknown): string => {
    if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
    if (value !== null && typeof value === 'object') {
      const entries = Object.entries(value)
        .filter(([, item]) => item !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`;
    }
    return JSON.stringify(value);
  };
  return createHash('sha256').update(canonical(request)).digest('hex');
}

describe('requestHash', () => {
  it('is the hash durable stores already hold, for any JSON body', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (body) => {
        expect(requestHash(body)).toBe(recordedHash(body));
      }),
      { numRuns: 500 },
    );
  });

  it('ignores key order and undefined members, and tells bodies apart', () => {
    const body = { order_id: 'a', amount: 5, delay_ms: { vendor: 1, payment: 2 } };
    const reordered = {
      delay_ms: { payment: 2, vendor: 1 },
      fail_step: undefined,
      amount: 5,
      order_id: 'a',
    };
    expect(canonicalJson(reordered)).toBe(
      '{"amount":5,"delay_ms":{"payment":2,"vendor":1},"order_id":"a"}',
    );
    expect(requestHash(reordered)).toBe(requestHash(body));
    expect(requestHash({ ...body, amount: 6 })).not.toBe(requestHash(body));
    expect(requestHash({ ...body, order_id: 'a"' })).not.toBe(requestHash(body));
    expect(requestHash([1, undefined, 2])).toBe(recordedHash([1, undefined, 2]));
  });
});
