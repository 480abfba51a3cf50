import type { Cancellation } from '../core/cancellation.js';
import { PoolDecorator } from '../core/pool-decorator.js';
import type { Permit, Pool } from '../core/semaphore.js';

/** Weight of the newest hold in the moving average: about the last 32 holds count. */
const holdWeight = 1 / 32;

/**
 * MeasuredPool decorates a {@link Pool}: it behaves exactly like the pool it wraps and keeps
 * a moving average of how long a permit is held, from which {@link expectedWaitMs} estimates
 * how long a newcomer would wait for a slot. Admission decides from that estimate.
 */
export class MeasuredPool extends PoolDecorator {
  readonly #now: () => number;
  #meanHoldMs = 0;

  constructor(pool: Pool, now: () => number = performance.now.bind(performance)) {
    super(pool);
    this.#now = now;
  }

  /** meanHoldMs is the moving average of how long a permit was held; 0 before any release. */
  get meanHoldMs(): number {
    return this.#meanHoldMs;
  }

  /**
   * expectedWaitMs estimates how long an acquire made now would wait for a slot: 0 while a
   * slot is free; else the slots serve the queue in turn, one holder per mean hold each, so
   * the newcomer is served after about (waiting + 1) / size mean holds.
   */
  expectedWaitMs(): number {
    const pool = this.inner;
    if (pool.inUse < pool.size) return 0;
    return ((pool.waiting + 1) / pool.size) * this.#meanHoldMs;
  }

  acquire(cancel?: Cancellation): Promise<Permit> {
    return this.inner.acquire(cancel).then((permit) => {
      const acquiredAt = this.#now();
      return {
        release: () => {
          permit.release();
          const heldMs = this.#now() - acquiredAt;
          this.#meanHoldMs =
            this.#meanHoldMs === 0
              ? heldMs
              : this.#meanHoldMs + (heldMs - this.#meanHoldMs) * holdWeight;
        },
      };
    });
  }
}
