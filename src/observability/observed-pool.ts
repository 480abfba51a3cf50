import type { Cancellation } from '../core/cancellation.js';
import { PoolDecorator } from '../core/pool-decorator.js';
import type { Permit, Pool } from '../core/semaphore.js';

/**
 * PoolWait is one acquire of an observed pool: when it was asked for, when it settled, and
 * whether it got a slot (false: its cancellation aborted it first). Times come from the
 * observer's clock, in milliseconds.
 */
export interface PoolWait {
  readonly startedAt: number;
  readonly settledAt: number;
  readonly acquired: boolean;
}

/**
 * ObservedPool decorates a {@link Pool}: it behaves exactly like the pool it wraps and, when
 * an acquire settles, reports how long it waited, with the cancellation it was given (the
 * order's), so the wait can be attached to the order that waited.
 */
export class ObservedPool extends PoolDecorator {
  readonly #onWait: (wait: PoolWait, cancel: Cancellation | undefined) => void;
  readonly #now: () => number;

  /**
   * `onWait` is called once per acquire, after it settles and before the caller sees the
   * result; it must not throw.
   */
  constructor(
    pool: Pool,
    onWait: (wait: PoolWait, cancel: Cancellation | undefined) => void,
    now: () => number = performance.now.bind(performance),
  ) {
    super(pool);
    this.#onWait = onWait;
    this.#now = now;
  }

  acquire(cancel?: Cancellation): Promise<Permit> {
    const startedAt = this.#now();
    return this.inner.acquire(cancel).then(
      (permit) => {
        this.#onWait({ startedAt, settledAt: this.#now(), acquired: true }, cancel);
        return permit;
      },
      (error: unknown) => {
        this.#onWait({ startedAt, settledAt: this.#now(), acquired: false }, cancel);
        throw error;
      },
    );
  }
}
