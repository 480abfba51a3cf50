import type { Cancellation } from './cancellation.js';

/**
 * Permit is one slot of a pool, held from a successful acquire until {@link release}.
 */
export interface Permit {
  /** release gives the slot back. Releasing the same permit twice throws an Error. */
  release(): void;
}

/**
 * Pool bounds how many holders may use a scarce resource at once. The in-process
 * {@link Semaphore} is one implementation; a distributed one can stand behind the same
 * interface.
 */
export interface Pool {
  /**
   * acquire resolves with a permit once a slot is free, serving waiters first in, first out.
   * If `cancel` aborts while waiting, the waiter leaves the queue at once and the promise
   * rejects with the abort reason; it never takes a slot afterwards. If `cancel` is already
   * aborted, it rejects at once without queueing.
   */
  acquire(cancel?: Cancellation): Promise<Permit>;
  /** size is the number of slots. */
  readonly size: number;
  /** inUse is the number of permits held. */
  readonly inUse: number;
  /** waiting is the number of acquirers queued for a slot. */
  readonly waiting: number;
}

interface Waiter {
  resolve: (permit: Permit) => void;
  removeListener: (() => void) | undefined;
}

/**
 * Semaphore is a counting semaphore with a FIFO wait queue: the project's in-process
 * courier pool.
 *
 * The queue is a Set: insertion order gives FIFO, and an aborted waiter is deleted in O(1)
 * wherever it stands.
 */
export class Semaphore implements Pool {
  readonly size: number;
  #inUse = 0;
  readonly #waiters = new Set<Waiter>();

  /** The size must be a positive safe integer; anything else throws a RangeError. */
  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`Semaphore size must be a positive integer, got ${String(size)}`);
    }
    this.size = size;
  }

  get inUse(): number {
    return this.#inUse;
  }

  get waiting(): number {
    return this.#waiters.size;
  }

  acquire(cancel?: Cancellation): Promise<Permit> {
    if (cancel?.aborted === true) return Promise.reject(cancel.reason);
    if (this.#inUse < this.size && this.#waiters.size === 0) {
      this.#inUse++;
      return Promise.resolve(this.#permit());
    }
    return this.#wait(cancel);
  }

  async #wait(cancel: Cancellation | undefined): Promise<Permit> {
    const permit = await new Promise<Permit>((resolve, reject) => {
      const waiter: Waiter = { resolve, removeListener: undefined };
      this.#waiters.add(waiter);
      if (cancel !== undefined) {
        waiter.removeListener = cancel.onAbort((reason) => {
          this.#waiters.delete(waiter);
          reject(reason);
        });
      }
    });
    if (cancel?.aborted === true) {
      // Granted a slot after we were canceled (the abort came between the grant and this
      // continuation). Pretend we didn't get it: put the slot back, then fail.
      permit.release();
      throw cancel.reason;
    }
    return permit;
  }

  #permit(): Permit {
    let released = false;
    return {
      release: () => {
        if (released) throw new Error('Semaphore: permit released twice');
        released = true;
        this.#release();
      },
    };
  }

  #release(): void {
    // Hand the slot straight to the first waiter, so a newcomer cannot overtake the queue.
    // The waiter's abort listener is removed before it is resolved, so an abort can no
    // longer reject it; #wait gives the slot back if the abort lands before it resumes.
    for (const waiter of this.#waiters) {
      this.#waiters.delete(waiter);
      waiter.removeListener?.();
      waiter.resolve(this.#permit());
      return;
    }
    this.#inUse--;
  }
}
