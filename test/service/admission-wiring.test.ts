import { describe, expect, it } from 'vitest';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import { deferred, testService } from '../helpers.js';

// How the order service tells admission what its orders do: an order counts as queued from its
// admission until its courier step holds a permit (the pool sees the steps' cancellation, the
// pipeline's observer maps it to the order), or until it ends without one.

describe('the order service and its admission', () => {
  it('an order stops counting as queued when its courier is granted, and its steps and outcome are measured', async () => {
    const courierTaken = deferred();
    const letGo = deferred();
    const otherStarted = deferred();
    const service = testService({
      courierPoolSize: 1,
      steps: (courierPool): Step<Order>[] => [
        {
          name: 'courier',
          run: async (_, cancel) => {
            const permit = await courierPool.acquire(cancel);
            courierTaken.resolve();
            await letGo.promise;
            permit.release();
          },
        },
        {
          name: 'other',
          run: async () => {
            otherStarted.resolve();
            await letGo.promise;
          },
        },
      ],
    });
    try {
      const answer = service.submit({ order: { id: 'o1', amount: 1 } });
      expect(service.admission.queued, 'admitted, being recorded').toBe(1);
      await courierTaken.promise;
      await otherStarted.promise;
      expect(service.admission.queued, 'holding its courier').toBe(0);
      expect(service.admission.inflight).toBe(1);
      letGo.resolve();
      expect((await answer).error).toBeUndefined();
      expect([service.admission.queued, service.admission.inflight]).toEqual([0, 0]);
      // Measured, a second order's prediction is scored: an order done on time sets no margin.
      const second = service.submit({ order: { id: 'o2', amount: 1 } });
      expect((await second).error).toBeUndefined();
      expect(service.admission.marginMs(0)).toBeLessThan(50);
    } finally {
      await service.close();
    }
  });

  it('an order that ends without its courier stops counting as queued', async () => {
    const service = testService({
      courierPoolSize: 1,
      steps: (): Step<Order>[] => [
        {
          name: 'payment',
          run: () => Promise.reject(new Error('declined')),
        },
      ],
    });
    try {
      const answer = service.submit({ order: { id: 'o1', amount: 1 } });
      expect(service.admission.queued).toBe(1);
      expect((await answer).error?.kind).toBe('internal');
      expect([service.admission.queued, service.admission.inflight]).toEqual([0, 0]);
    } finally {
      await service.close();
    }
  });
});
