/**
 * Tracker counts work in flight: {@link enter} when a piece of work starts, {@link leave}
 * when it has settled. It keeps the peak, so tests can prove that work ran in parallel and
 * that nothing keeps running once an order has been answered.
 */
export class Tracker {
  #active = 0;
  #peak = 0;
  #started = 0;
  #abandoned = 0;

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

  /**
   * abandoned is the number of pieces of work still active that nobody waits for any more
   * (a step that ignored its order's abort and was answered without). They stay counted in
   * {@link active} too, until they settle.
   */
  get abandoned(): number {
    return this.#abandoned;
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

  /**
   * abandon marks one active piece of work as abandoned. Abandoning more than is active
   * throws a RangeError and changes nothing.
   */
  abandon(): void {
    if (this.#abandoned >= this.#active) {
      throw new RangeError('Tracker.abandon called with nothing left to abandon');
    }
    this.#abandoned++;
  }

  /**
   * leaveAbandoned marks one abandoned piece of work settled: it leaves {@link active} and
   * {@link abandoned}. With nothing abandoned it throws a RangeError and changes nothing.
   */
  leaveAbandoned(): void {
    if (this.#abandoned === 0) {
      throw new RangeError('Tracker.leaveAbandoned called with nothing abandoned');
    }
    this.#abandoned--;
    this.leave();
  }
}
