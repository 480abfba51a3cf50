import type { Cancellation } from '../core/cancellation.js';
import { PoolDecorator } from '../core/pool-decorator.js';
import type { Permit, Pool } from '../core/semaphore.js';
import { OrderedTimes } from './ordered-times.js';

/** Weight of the newest hold in the moving average: about the last 32 holds count. */
const holdWeight = 1 / 32;

export interface MeasuredPoolOptions {
  /** The clock, in milliseconds; `performance.now` by default. */
  readonly now?: (() => number) | undefined;
  /**
   * Called when an acquire made through this pool is granted, before the permit is handed
   * over, with the acquire's cancellation and how long it waited in the pool. It must not
   * throw.
   */
  readonly granted?: ((cancel: Cancellation | undefined, waitedMs: number) => void) | undefined;
}

/**
 * MeasuredPool decorates a {@link Pool}: it behaves exactly like the pool it wraps, keeps a
 * moving average of how long a permit is held and when every permit held through it was
 * acquired, and from them estimates when each holder will be done ({@link residualMs}).
 * Admission estimates an order's wait from that.
 */
export class MeasuredPool extends PoolDecorator {
  readonly #now: () => number;
  readonly #granted: ((cancel: Cancellation | undefined, waitedMs: number) => void) | undefined;
  #meanHoldMs = 0;
  #holdDeviationMs = 0;
  #deviationsMeasured = false;
  #holdsMeasured = false;
  #acquiring = 0;
  /** When each permit held through this pool was acquired, oldest first. */
  readonly #holders = new OrderedTimes();

  constructor(pool: Pool, options: MeasuredPoolOptions = {}) {
    super(pool);
    this.#now = options.now ?? performance.now.bind(performance);
    this.#granted = options.granted;
  }

  /** meanHoldMs is the moving average of how long a permit was held; 0 before any release. */
  get meanHoldMs(): number {
    return this.#meanHoldMs;
  }

  /**
   * holdDeviationMs is the moving average of how far a hold was from the mean before it: how
   * much one hold may differ from {@link meanHoldMs}. 0 before two releases.
   */
  get holdDeviationMs(): number {
    return this.#holdDeviationMs;
  }

  /** holdsMeasured is true once a permit acquired through this pool has been released. */
  get holdsMeasured(): boolean {
    return this.#holdsMeasured;
  }

  /** acquiring is the number of acquires made through this pool and not yet settled. */
  get acquiring(): number {
    return this.#acquiring;
  }

  /** holding is the number of permits acquired through this pool and not yet released. */
  get holding(): number {
    return this.#holders.size;
  }

  /**
   * holdEstimateMs is the hold expected of a permit: the moving average once one has been
   * measured; before that, the age of the oldest permit held (no hold ends sooner than it has
   * lasted), or 0 when none is held.
   */
  holdEstimateMs(): number {
    if (this.#holdsMeasured) return this.#meanHoldMs;
    return this.#holders.size === 0 ? 0 : this.#now() - this.#holders.oldest();
  }

  /**
   * position tells where a newcomer would stand if `ahead` acquirers of this process come
   * before it (whether they have called acquire yet or not) along with the pool's other
   * waiters (another instance's, on a shared pool): negative when a slot is left free for
   * it, else the number of releases it must wait for before its own (0: the next one).
   */
  position(ahead: number): number {
    const pool = this.inner;
    const others = Math.max(0, pool.waiting - this.#acquiring);
    return ahead + others - Math.max(0, pool.size - pool.inUse);
  }

  /**
   * residualMs estimates how long the holder that will be done `rank`-th (0: first) still
   * holds its permit, for `rank` in [0, inUse), when a hold lasts `holdMs`: `holdMs` less its
   * age, at least 0. Holders are taken to be done in the order they acquired, so the
   * `rank`-th is the `rank`-th oldest. A holder of another instance (on a shared pool) has an
   * unknown age: while the pool has any, the residuals are taken as spread evenly over a hold.
   * O(1), allocation-free.
   */
  residualMs(rank: number, holdMs: number): number {
    const inUse = Math.min(this.inner.size, this.inner.inUse);
    if (inUse !== this.#holders.size) return (holdMs * (rank + 0.5)) / Math.max(1, inUse);
    return Math.max(0, holdMs - (this.#now() - this.#holders.nth(rank)));
  }

  acquire(cancel?: Cancellation): Promise<Permit> {
    const calledAt = this.#now();
    this.#acquiring++;
    return this.inner.acquire(cancel).then(
      (permit) => {
        this.#acquiring--;
        const acquiredAt = this.#now();
        const holder = this.#holders.add(acquiredAt);
        this.#granted?.(cancel, acquiredAt - calledAt);
        return {
          release: () => {
            // Throws on a second release, before anything here is counted twice.
            permit.release();
            this.#holders.remove(holder);
            const heldMs = this.#now() - acquiredAt;
            if (this.#holdsMeasured) {
              const deviationMs = Math.abs(heldMs - this.#meanHoldMs);
              // The first deviation stands for the average until there are more, as the first
              // hold does for the mean.
              this.#holdDeviationMs = this.#deviationsMeasured
                ? this.#holdDeviationMs + (deviationMs - this.#holdDeviationMs) * holdWeight
                : deviationMs;
              this.#deviationsMeasured = true;
              this.#meanHoldMs += (heldMs - this.#meanHoldMs) * holdWeight;
            } else {
              this.#meanHoldMs = heldMs;
            }
            this.#holdsMeasured = true;
          },
        };
      },
      (error: unknown) => {
        this.#acquiring--;
        throw error;
      },
    );
  }
}
