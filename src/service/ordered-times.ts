/** TimeEntry is one time held by an {@link OrderedTimes}; {@link OrderedTimes.remove} takes it out. */
export interface TimeEntry {
  readonly time: number;
  /** False once removed. */
  live: boolean;
}

/**
 * OrderedTimes keeps times (when an order was admitted, when a permit was acquired) in the
 * order they were added, and answers which is the k-th oldest still in. Adding and removing
 * are O(1) (amortized); so is {@link nth}, exact while entries have been removed oldest first,
 * interpolated between the oldest and the newest once one was removed out of turn.
 *
 * Like the semaphore's queue, it is an array read from a moving head: a removed entry is only
 * marked, skipped when it reaches either end, and the array is compacted once the removed
 * (those behind the head included) outnumber the live ones, which makes {@link nth} exact
 * again and lets the removed be collected.
 */
export class OrderedTimes {
  #entries: TimeEntry[] = [];
  #head = 0;
  #size = 0;

  /** size is the number of times still in. */
  get size(): number {
    return this.#size;
  }

  /** retained is the number of entries held, removed ones not yet dropped included (for leak tests). */
  get retained(): number {
    return this.#entries.length;
  }

  /** add puts `time` in as the newest and returns its entry. */
  add(time: number): TimeEntry {
    const entry: TimeEntry = { time, live: true };
    this.#entries.push(entry);
    this.#size++;
    return entry;
  }

  /** remove takes `entry` out; removing it again does nothing. */
  remove(entry: TimeEntry): void {
    if (!entry.live) return;
    entry.live = false;
    this.#size--;
    const entries = this.#entries;
    while (this.#head < entries.length && entries[this.#head]?.live === false) this.#head++;
    while (entries.length > this.#head && entries[entries.length - 1]?.live === false) {
      entries.pop();
    }
    if (this.#size === 0) {
      this.#entries = [];
      this.#head = 0;
    } else if (entries.length > 2 * this.#size + 16) {
      this.#entries = entries.filter((e, i) => i >= this.#head && e.live);
      this.#head = 0;
    }
  }

  /** oldest is the oldest time still in; NaN when none is. */
  oldest(): number {
    return this.#size === 0 ? Number.NaN : (this.#entries[this.#head] as TimeEntry).time;
  }

  /** newest is the newest time still in; NaN when none is. */
  newest(): number {
    return this.#size === 0 ? Number.NaN : (this.#entries.at(-1) as TimeEntry).time;
  }

  /**
   * nth is the `rank`-th oldest time still in (0: the oldest), for `rank` in [0, size): exact
   * while no entry between the oldest and the newest was removed, else interpolated between
   * them by rank. NaN when `rank` is out of range.
   */
  nth(rank: number): number {
    if (!(rank >= 0 && rank < this.#size)) return Number.NaN;
    const span = this.#entries.length - this.#head;
    if (span === this.#size) return (this.#entries[this.#head + rank] as TimeEntry).time;
    const oldest = this.oldest();
    return oldest + ((this.newest() - oldest) * rank) / (this.#size - 1);
  }
}
