/**
 * Tracker counts work in flight: {@link enter} when a piece of work starts, {@link leave}
 * when it has settled. It keeps the peak, so tests can prove that work ran in parallel and
 * that nothing keeps running once an order has been answered.
 */
export class Tracker {
  #active = 0;
  #peak = 0;
  #started = 0;

  /** active is the number of pieces of work entered and not yet left. */
  get active(): number {
    return this.#active;
  }

  /** peak is the highest {@link active} ever seen. */
  get peak(): number {
    return this.#peak;
  }

  /** started is the number of {@link enter} calls ever made. */
  get started(): number {
    return this.#started;
  }

  enter(): void {
    this.#started++;
    if (++this.#active > this.#peak) this.#peak = this.#active;
  }

  /** leave marks one piece of work settled. Leaving more than was entered throws a RangeError. */
  leave(): void {
    if (this.#active === 0) throw new RangeError('Tracker.leave called with nothing in flight');
    this.#active--;
  }
}
