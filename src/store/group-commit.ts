/** One queued operation and the promise waiting for its result. */
interface Pending<Op, Result> {
  readonly op: Op;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * GroupCommit batches the operations of a store: every operation queued during one turn of
 * the event loop, and all those queued while a commit is in flight, are committed together
 * by one call of `commit` — one transaction, one flush to the disk — instead of one each.
 * Under load a batch grows until a commit costs about as long as it takes to fill the next,
 * so a store keeps up with many more writes per second than it has commits.
 *
 * `commit` receives the operations in the order they were queued and resolves with one
 * result per operation, in the same order; if it rejects (or throws), every operation of the
 * batch rejects with that error. At most one commit is in flight at a time: the order of
 * operations is the order of their effects.
 */
export class GroupCommit<Op, Result> {
  readonly #commit: (ops: Op[]) => Promise<Result[]> | Result[];
  readonly #now: () => number;
  #queue: Pending<Op, Result>[] = [];
  #scheduled = false;
  #inFlightSince: number | undefined;
  #idle: (() => void)[] = [];

  constructor(
    commit: (ops: Op[]) => Promise<Result[]> | Result[],
    now: () => number = performance.now.bind(performance),
  ) {
    this.#commit = commit;
    this.#now = now;
  }

  /**
   * backlogMs says how far behind the store is: how long the commit in flight has run, 0
   * when none is. It grows while the store is stalled and falls back the moment a commit
   * completes (an average of past commits would remember a stall long after it ended).
   */
  backlogMs(): number {
    return this.#inFlightSince === undefined ? 0 : this.#now() - this.#inFlightSince;
  }

  /** run queues `op` for the next commit and resolves with its result once committed. */
  run(op: Op): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ op, resolve, reject });
      if (!this.#scheduled && this.#inFlightSince === undefined) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  /** drained resolves once nothing is queued or in flight. */
  drained(): Promise<void> {
    if (this.#queue.length === 0 && this.#inFlightSince === undefined && !this.#scheduled) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) {
      this.#notifyIdle();
      return;
    }
    this.#queue = [];
    this.#inFlightSince = this.#now();
    let results: Promise<Result[]> | Result[];
    try {
      results = this.#commit(batch.map((pending) => pending.op));
    } catch (error) {
      this.#settle(batch, undefined, error);
      return;
    }
    if (Array.isArray(results)) {
      this.#settle(batch, results, undefined);
      return;
    }
    results.then(
      (values) => {
        this.#settle(batch, values, undefined);
      },
      (error: unknown) => {
        this.#settle(batch, undefined, error);
      },
    );
  };

  #settle(
    batch: readonly Pending<Op, Result>[],
    results: readonly Result[] | undefined,
    error: unknown,
  ): void {
    this.#inFlightSince = undefined;
    if (results === undefined || results.length !== batch.length) {
      const reason =
        results === undefined ? error : new Error('a commit returned the wrong number of results');
      for (const pending of batch) pending.reject(reason);
    } else {
      for (let i = 0; i < batch.length; i++) {
        (batch[i] as Pending<Op, Result>).resolve(results[i] as Result);
      }
    }
    // Whatever was queued while this batch committed goes next, in a batch of its own.
    if (this.#queue.length > 0) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    } else {
      this.#notifyIdle();
    }
  }

  #notifyIdle(): void {
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }
}
