import type { Cancellation } from './cancellation.js';
import type { Permit, Pool } from './semaphore.js';

/**
 * PoolDecorator is a {@link Pool} that stands in front of another: `size`, `inUse` and
 * `waiting` are read straight through, and a subclass says what its `acquire` adds (timing
 * a wait, measuring a hold). The pool behind is left untouched.
 */
export abstract class PoolDecorator implements Pool {
  /** The pool behind this one. */
  protected readonly inner: Pool;

  constructor(inner: Pool) {
    this.inner = inner;
  }

  get size(): number {
    return this.inner.size;
  }

  get inUse(): number {
    return this.inner.inUse;
  }

  get waiting(): number {
    return this.inner.waiting;
  }

  abstract acquire(cancel?: Cancellation): Promise<Permit>;
}
