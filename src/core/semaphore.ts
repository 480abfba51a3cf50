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
  /** False once the waiter has been granted a slot or has left on abort. */
  queued: boolean;
}

/**
 * Semaphore is a counting semaphore with a FIFO wait queue: the project's in-process
 * courier pool.
 *
 * The queue is an array read from a moving head. An aborted waiter is only marked as gone
 * (O(1) wherever it stands) and skipped when it reaches the head; the array is compacted once
 * the gone outnumber the queued, so aborts cannot make it grow without bound. (A Set would
 * also delete in O(1), but a Set drained from the front scans its deleted entries on every
 * read of its first element.)
 */
export class Semaphore implements Pool {
  readonly size: number;
  #inUse = 0;
  #queue: Waiter[] = [];
  #head = 0;
  #waiting = 0;

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
    return this.#waiting;
  }

  acquire(cancel?: Cancellation): Promise<Permit> {
    if (cancel?.aborted === true) return Promise.reject(cancel.reason);
    if (this.#inUse < this.size && this.#waiting === 0) {
      this.#inUse++;
      return Promise.resolve(this.#permit());
    }
    return this.#wait(cancel);
  }

  async #wait(cancel: Cancellation | undefined): Promise<Permit> {
    const permit = await new Promise<Permit>((resolve, reject) => {
      const waiter: Waiter = { resolve, removeListener: undefined, queued: true };
      this.#queue.push(waiter);
      this.#waiting++;
      if (cancel !== undefined) {
        waiter.removeListener = cancel.onAbort((reason) => {
          waiter.queued = false;
          this.#waiting--;
          this.#compact();
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
    while (this.#head < this.#queue.length) {
      const waiter = this.#queue[this.#head++] as Waiter;
      if (!waiter.queued) continue;
      waiter.queued = false;
      this.#waiting--;
      this.#compact();
      waiter.removeListener?.();
      waiter.resolve(this.#permit());
      return;
    }
    this.#inUse--;
    this.#compact();
  }

  /**
   * compact drops the entries of granted and aborted waiters once they outnumber the queued
   * ones, so the array stays within twice the queue.
   */
  #compact(): void {
    const length = this.#queue.length;
    if (length === 0) return;
    if (this.#waiting === 0) {
      this.#queue = [];
      this.#head = 0;
    } else if (length > 64 && this.#waiting * 2 < length) {
      this.#queue = this.#queue.filter((waiter, i) => i >= this.#head && waiter.queued);
      this.#head = 0;
    }
  }
}
