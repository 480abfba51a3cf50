/** One queued operation and the promise waiting for its result. */
interface Pending<Op, Result> {
  readonly op: Op;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: unknown) => void;
}

/** Weight of the newest commit in the moving average of commit durations. */
const commitWeight = 1 / 8;

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
  #meanCommitMs = 0;
  #idle: (() => void)[] = [];

  constructor(
    commit: (ops: Op[]) => Promise<Result[]> | Result[],
    now: () => number = performance.now.bind(performance),
  ) {
    this.#commit = commit;
    this.#now = now;
  }

  /** queued is the number of operations waiting for the next commit. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * backlogMs estimates how long an operation queued now waits until committed: 0 when
   * nothing is in flight; else how long the commit in flight has run, plus one mean commit
   * for the batch this operation would join.
   */
  backlogMs(): number {
    if (this.#inFlightSince === undefined) return 0;
    return this.#now() - this.#inFlightSince + this.#meanCommitMs;
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
    const startedAt = this.#now();
    this.#inFlightSince = startedAt;
    let results: Promise<Result[]> | Result[];
    try {
      results = this.#commit(batch.map((pending) => pending.op));
    } catch (error) {
      this.#settle(batch, startedAt, undefined, error);
      return;
    }
    if (Array.isArray(results)) {
      this.#settle(batch, startedAt, results, undefined);
      return;
    }
    results.then(
      (values) => {
        this.#settle(batch, startedAt, values, undefined);
      },
      (error: unknown) => {
        this.#settle(batch, startedAt, undefined, error);
      },
    );
  };

  #settle(
    batch: readonly Pending<Op, Result>[],
    startedAt: number,
    results: readonly Result[] | undefined,
    error: unknown,
  ): void {
    const tookMs = this.#now() - startedAt;
    this.#meanCommitMs += (tookMs - this.#meanCommitMs) * commitWeight;
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
