import { afterEach, describe, expect, it } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import type { Permit, Pool } from '../../src/core/semaphore.js';

/** An open pool and what disposes of it. */
export interface PoolUnderTest {
  readonly pool: Pool;
  close(): Promise<void>;
}

/** settledWithin tells whether `promise` settles within `ms` (it is left to settle later). */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * poolContract is the one behavioural suite every {@link Pool} passes: the in-process
 * semaphore and the Redis pool. `open(size)` makes a fresh pool of `size` slots.
 */
export function poolContract(name: string, open: (size: number) => Promise<PoolUnderTest>): void {
  describe(`Pool contract: ${name}`, () => {
    const opened: PoolUnderTest[] = [];
    afterEach(async () => {
      for (const item of opened.splice(0)) await item.close();
    });
    const make = async (size: number): Promise<Pool> => {
      const item = await open(size);
      opened.push(item);
      return item.pool;
    };

    it('grants up to size at once; the next waits for a release', async () => {
      const pool = await make(2);
      const a = await pool.acquire();
      const b = await pool.acquire();
      expect(pool.size).toBe(2);
      const c = pool.acquire();
      expect(await settledWithin(c, 50), 'a third acquire of 2 slots waits').toBe(false);
      a.release();
      const third = await c;
      b.release();
      third.release();
    });

    // Acquires made one after the other reach the pool in that order (for Redis: one
    // connection carries them in order).
    it('serves waiters first in, first out', async () => {
      const pool = await make(1);
      const held = await pool.acquire();
      const order: number[] = [];
      const waits: Promise<void>[] = [];
      for (let i = 0; i < 5; i++) {
        const waiting = pool.acquire().then((permit) => {
          order.push(i);
          permit.release();
        });
        waits.push(waiting);
      }
      held.release();
      await Promise.all(waits);
      expect(order).toStrictEqual([0, 1, 2, 3, 4]);
    });

    it('an already aborted acquire rejects with the reason and takes nothing', async () => {
      const pool = await make(1);
      const cancel = new CancelSource();
      const reason = new Error('gone');
      cancel.abort(reason);
      await expect(pool.acquire(cancel)).rejects.toBe(reason);
      const permit = await pool.acquire();
      permit.release();
    });

    it('an abort while waiting leaves the line at once, never takes the slot, removes its listener', async () => {
      const pool = await make(1);
      const held = await pool.acquire();
      const cancel = new CancelSource();
      const waiting = pool.acquire(cancel);
      expect(await settledWithin(waiting, 50)).toBe(false);
      const reason = new Error('client left');
      cancel.abort(reason);
      await expect(waiting).rejects.toBe(reason);
      expect(cancel.listenerCount).toBe(0);
      // The slot goes to the next in line, not to the aborted waiter.
      const next = pool.acquire();
      held.release();
      (await next).release();
    });

    it('an abort racing its own acquire never leaks a slot', async () => {
      const pool = await make(1);
      for (let i = 0; i < 20; i++) {
        const cancel = new CancelSource();
        const racing = pool.acquire(cancel);
        cancel.abort(new Error('at once'));
        await racing.then(
          (permit) => {
            permit.release();
          },
          () => undefined,
        );
      }
      // Every slot is free again: one acquire gets it at once.
      const permit = await pool.acquire();
      expect(await settledWithin(pool.acquire(new CancelSource()), 50)).toBe(false);
      permit.release();
    });

    it('releasing a permit twice throws', async () => {
      const pool = await make(1);
      const permit = await pool.acquire();
      permit.release();
      expect(() => {
        permit.release();
      }).toThrow();
    });

    it('never has more holders than slots under concurrent acquires and aborts', async () => {
      const size = 3;
      const pool = await make(size);
      let holding = 0;
      let peak = 0;
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const cancel = new CancelSource();
          if (i % 4 === 0) setTimeout(() => cancel.abort(new Error('abort')), i % 7);
          let permit: Permit;
          try {
            permit = await pool.acquire(cancel);
          } catch {
            return;
          }
          holding++;
          peak = Math.max(peak, holding);
          await new Promise((resolve) => setTimeout(resolve, 2));
          holding--;
          permit.release();
        }),
      );
      expect(peak).toBeLessThanOrEqual(size);
      expect(peak).toBeGreaterThan(0);
      const permit = await pool.acquire();
      permit.release();
    });
  });
}
