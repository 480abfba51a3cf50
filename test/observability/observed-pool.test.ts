import { describe, expect, it } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { Semaphore } from '../../src/core/semaphore.js';
import { ObservedPool, type PoolWait } from '../../src/observability/observed-pool.js';

function observed(size: number) {
  let clock = 0;
  const waits: [PoolWait, unknown][] = [];
  const inner = new Semaphore(size);
  const pool = new ObservedPool(
    inner,
    (wait, cancel) => waits.push([wait, cancel]),
    () => clock,
  );
  return { inner, pool, waits, tick: (ms: number) => (clock += ms) };
}

describe('ObservedPool', () => {
  it('reports each wait with its cancellation, and reads size, inUse and waiting through', async () => {
    const { pool, waits, tick } = observed(1);
    const first = await pool.acquire();
    const cancel = new CancelSource();
    const second = pool.acquire(cancel);
    expect([pool.size, pool.inUse, pool.waiting]).toEqual([1, 1, 1]);
    tick(7);
    first.release();
    (await second).release();
    expect(waits).toEqual([
      [{ startedAt: 0, settledAt: 0, acquired: true }, undefined],
      [{ startedAt: 0, settledAt: 7, acquired: true }, cancel],
    ]);
    expect([pool.inUse, pool.waiting]).toEqual([0, 0]);
  });

  it('an aborted wait is reported as not acquired, rejects with the reason and leaks nothing', async () => {
    const { pool, inner, waits, tick } = observed(1);
    const held = await pool.acquire();
    const cancel = new CancelSource();
    const waiting = pool.acquire(cancel);
    tick(3);
    const reason = new Error('client gone');
    cancel.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(waits[1]).toEqual([{ startedAt: 0, settledAt: 3, acquired: false }, cancel]);
    held.release();
    expect([inner.inUse, inner.waiting, cancel.listenerCount]).toEqual([0, 0, 0]);
  });
});
