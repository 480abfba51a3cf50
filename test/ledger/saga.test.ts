import { describe, expect, it } from 'vitest';
import { compensateStep } from '../../src/ledger/saga.js';
import { OrderError } from '../../src/order/errors.js';
import type { Step } from '../../src/order/step.js';

/** A step whose compensation throws `error`. */
function undoThrowing(error: unknown): Step<string> {
  return {
    name: 'payment',
    run: () => Promise.resolve(),
    compensate: () => Promise.reject(error),
  };
}

describe('compensateStep', () => {
  it.each([
    {
      thrown: new OrderError('internal', 'refunding the payment failed (attempt 2)'),
      kind: 'internal',
      shown: 'refunding the payment failed (attempt 2)',
    },
    {
      thrown: new Error('connect ECONNREFUSED 10.0.0.7:5432 (user refunds)'),
      kind: 'internal',
      shown: 'compensation of payment failed (attempt 2)',
    },
  ])(
    'a failed attempt shows $shown: an OrderError its message, anything else a fixed text',
    async ({ thrown, kind, shown }) => {
      const got = await compensateStep(undoThrowing(thrown), 'order', 2, 1000);
      expect(got).toEqual({
        ok: false,
        kind,
        message: thrown.message,
        publicMessage: shown,
      });
    },
  );

  it('an attempt past its deadline shows the deadline', async () => {
    const step: Step<string> = {
      name: 'vendor',
      run: () => Promise.resolve(),
      compensate: (_order, cancel) =>
        new Promise((_resolve, reject) => {
          cancel.onAbort(reject);
        }),
    };
    const got = await compensateStep(step, 'order', 1, 5);
    expect(got).toMatchObject({
      ok: false,
      kind: 'timeout',
      publicMessage: 'compensation of vendor exceeded 5 ms',
    });
  });
});
