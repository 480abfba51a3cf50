import { describe, expect, it } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { Semaphore, type Permit } from '../../src/core/semaphore.js';
import { promiseState, seededRandom } from '../helpers.js';

describe('Semaphore', () => {
  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])(
    'size %s throws a RangeError',
    (size) => {
      expect(() => new Semaphore(size)).toThrow(RangeError);
    },
  );

  it.each([1, 5, 1000])('size %s is accepted', (size) => {
    const pool = new Semaphore(size);
    expect(pool.size).toBe(size);
    expect(pool.inUse).toBe(0);
    expect(pool.waiting).toBe(0);
  });

  it('acquires up to its size at once, then blocks until a release', async () => {
    const pool = new Semaphore(2);
    const a = await pool.acquire();
    await pool.acquire();
    expect(pool.inUse, 'inUse when full').toBe(2);
    const third = pool.acquire();
    expect(await promiseState(third), 'third acquire while full').toBe('pending');
    expect(pool.waiting, 'waiting').toBe(1);
    a.release();
    expect(await promiseState(third), 'third acquire after a release').toBe('fulfilled');
    expect(pool.inUse, 'inUse after hand-over').toBe(2);
    expect(pool.waiting, 'waiting after hand-over').toBe(0);
  });

  it('serves waiters first in, first out, and a newcomer cannot overtake the queue', async () => {
    const pool = new Semaphore(1);
    const holder = await pool.acquire();
    const served: number[] = [];
    const permits: Promise<Permit>[] = [];
    for (let i = 0; i < 5; i++) {
      const permit = pool.acquire();
      permits.push(permit);
      void permit.then(() => served.push(i));
    }
    holder.release();
    const newcomer = pool.acquire(); // arrives while the released slot is being handed over
    for (const permit of permits) (await permit).release();
    (await newcomer).release();
    expect(served, 'order served').toEqual([0, 1, 2, 3, 4]);
    expect(pool.inUse, 'inUse at the end').toBe(0);
  });

  it('an abort while waiting leaves the queue at once, rejects with the reason and never acquires', async () => {
    const pool = new Semaphore(1);
    const holder = await pool.acquire();
    const cancel = new CancelSource();
    const aborted = pool.acquire(cancel);
    const next = pool.acquire();
    expect(pool.waiting, 'waiting before abort').toBe(2);
    const reason = new Error('client went away');
    cancel.abort(reason);
    expect(pool.waiting, 'waiting right after abort (synchronously)').toBe(1);
    expect(cancel.listenerCount, 'listeners after abort').toBe(0);
    await expect(aborted).rejects.toBe(reason);
    holder.release();
    const permit = await next; // the slot skips the aborted waiter
    expect(pool.inUse, 'inUse with the next waiter served').toBe(1);
    permit.release();
    expect(pool.inUse, 'inUse at the end').toBe(0);
    expect(pool.waiting, 'waiting at the end').toBe(0);
  });

  it('a pre-aborted acquire rejects at once without queueing, even with free slots', async () => {
    const pool = new Semaphore(3);
    const cancel = new CancelSource();
    cancel.abort('gone');
    const acquired = pool.acquire(cancel);
    expect(pool.waiting).toBe(0);
    expect(pool.inUse).toBe(0);
    await expect(acquired).rejects.toBe('gone');
  });

  it('a served waiter leaves no abort listener behind', async () => {
    const pool = new Semaphore(1);
    const holder = await pool.acquire();
    const cancel = new CancelSource();
    const waiting = pool.acquire(cancel);
    expect(cancel.listenerCount, 'listeners while waiting').toBe(1);
    holder.release();
    (await waiting).release();
    expect(cancel.listenerCount, 'listeners after being served').toBe(0);
  });

  it('a slot granted after the abort is given back, then the acquire fails', async () => {
    const pool = new Semaphore(1);
    const holder = await pool.acquire();
    const cancel = new CancelSource();
    const raced = pool.acquire(cancel);
    const behind = pool.acquire();
    // release grants the slot to `raced` synchronously; the abort lands before its
    // continuation runs.
    holder.release();
    const reason = new Error('late abort');
    cancel.abort(reason);
    await expect(raced).rejects.toBe(reason);
    const permit = await behind; // the slot given back went to the next waiter
    expect(pool.inUse, 'inUse with the next waiter served').toBe(1);
    permit.release();
    expect(pool.inUse, 'inUse at the end').toBe(0);
  });

  it('a slot granted after the abort with no one waiting frees the pool', async () => {
    const pool = new Semaphore(1);
    const holder = await pool.acquire();
    const cancel = new CancelSource();
    const raced = pool.acquire(cancel);
    holder.release();
    cancel.abort('late');
    await expect(raced).rejects.toBe('late');
    expect(pool.inUse).toBe(0);
    expect(pool.waiting).toBe(0);
  });

  it('releasing a permit twice throws and does not free a second slot', async () => {
    const pool = new Semaphore(2);
    const a = await pool.acquire();
    await pool.acquire();
    a.release();
    expect(() => {
      a.release();
    }).toThrow(/twice/);
    expect(pool.inUse).toBe(1);
  });

  it('thousands of randomly aborted and failed acquisitions leak no permit', async () => {
    const pool = new Semaphore(3);
    const random = seededRandom(42);
    let holding = 0;
    let maxHolding = 0;
    let served = 0;
    let rejected = 0;
    const sources: CancelSource[] = [];
    const work: Promise<void>[] = [];
    for (let i = 0; i < 5000; i++) {
      const cancel = new CancelSource();
      sources.push(cancel);
      work.push(
        (async () => {
          let permit: Permit;
          try {
            permit = await pool.acquire(cancel);
          } catch (error) {
            expect(error, 'rejection reason').toBe(cancel.reason);
            rejected++;
            return;
          }
          served++;
          maxHolding = Math.max(maxHolding, ++holding);
          try {
            await Promise.resolve();
            if (random() < 0.3) throw new Error('step failed while holding a slot');
          } catch {
            // the holder's failure must not keep the slot
          } finally {
            holding--;
            permit.release();
          }
        })(),
      );
      // Abort some waiters now, some earlier ones later, some never.
      if (random() < 0.3) cancel.abort(new Error(`abort ${i}`));
      if (random() < 0.2) sources[Math.floor(random() * sources.length)]?.abort('late abort');
      if (random() < 0.1) await Promise.resolve();
    }
    await Promise.all(work);
    expect(served + rejected, 'settled acquisitions').toBe(5000);
    expect(served, 'served').toBeGreaterThan(0);
    expect(rejected, 'rejected').toBeGreaterThan(0);
    expect(maxHolding, 'most holders at once').toBeLessThanOrEqual(3);
    expect(pool.inUse, 'inUse at the end').toBe(0);
    expect(pool.waiting, 'waiting at the end').toBe(0);
    for (const source of sources) expect(source.listenerCount).toBe(0);
    // The pool still has its full size.
    const permits = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    const fourthCancel = new CancelSource();
    const fourth = pool.acquire(fourthCancel);
    expect(await promiseState(fourth), 'a fourth acquire').toBe('pending');
    fourthCancel.abort('done');
    await expect(fourth).rejects.toBe('done');
    for (const permit of permits) permit.release();
  });
});
