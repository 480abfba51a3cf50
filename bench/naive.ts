import { setMaxListeners } from 'node:events';

/**
 * The naive implementations the benchmarks compare against: the same task group and
 * semaphore written the obvious way, one `AbortController` per group and one
 * `addEventListener` per waiting step or waiter. They offer the same interface as the
 * project's primitives, so every benchmark runs the same steps on both.
 */

/** BenchCancel is what a benchmark step sees of its group's cancellation. */
export interface BenchCancel {
  readonly aborted: boolean;
  readonly reason: unknown;
  onAbort(listener: (reason: unknown) => void): () => void;
}

/** BenchGroup is the task-group interface shared by the project's TaskGroup and the naive one. */
export interface BenchGroup {
  go(task: (cancel: BenchCancel) => unknown): void;
  wait(): Promise<void>;
}

/** BenchPool is the pool interface shared by the Semaphore and the naive one. */
export interface BenchPool {
  acquire(cancel?: BenchCancel): Promise<{ release(): void }>;
}

/** SignalCancel adapts an AbortSignal to {@link BenchCancel} with addEventListener. */
class SignalCancel implements BenchCancel {
  constructor(readonly signal: AbortSignal) {}
  get aborted(): boolean {
    return this.signal.aborted;
  }
  get reason(): unknown {
    return this.signal.reason as unknown;
  }
  onAbort(listener: (reason: unknown) => void): () => void {
    const signal = this.signal;
    const onAbort = (): void => {
      listener(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    return () => {
      signal.removeEventListener('abort', onAbort);
    };
  }
}

/** NaiveGroup is errgroup over an AbortController: the first failure aborts the controller. */
export class NaiveGroup implements BenchGroup {
  readonly #controller = new AbortController();
  readonly #cancel = new SignalCancel(this.#controller.signal);
  readonly #tasks: Promise<unknown>[] = [];
  #error: unknown = undefined;
  #failed = false;

  go(task: (cancel: BenchCancel) => unknown): void {
    this.#tasks.push(
      Promise.resolve()
        .then(() => task(this.#cancel))
        .catch((error: unknown) => {
          if (!this.#failed) {
            this.#failed = true;
            this.#error = error;
            this.#controller.abort(error);
          }
        }),
    );
  }

  async wait(): Promise<void> {
    await Promise.all(this.#tasks);
    this.#controller.abort();
    if (this.#failed) throw this.#error;
  }
}

/** NaiveSemaphore queues waiters in an array and listens for aborts with addEventListener. */
export class NaiveSemaphore implements BenchPool {
  #free: number;
  readonly #queue: { grant: () => void }[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  acquire(cancel?: BenchCancel): Promise<{ release(): void }> {
    if (cancel?.aborted === true) return Promise.reject(cancel.reason);
    const permit = {
      release: () => {
        this.#release();
      },
    };
    if (this.#free > 0 && this.#queue.length === 0) {
      this.#free--;
      return Promise.resolve(permit);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          remove?.();
          resolve(permit);
        },
      };
      const remove = cancel?.onAbort((reason) => {
        this.#queue.splice(this.#queue.indexOf(waiter), 1);
        reject(reason);
      });
      this.#queue.push(waiter);
    });
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next === undefined) this.#free++;
    else next.grant();
  }
}

/** NaiveCancelSource is an AbortController seen through {@link BenchCancel}. */
export function naiveCancelSource(): { cancel: BenchCancel; abort(reason: unknown): void } {
  const controller = new AbortController();
  // Many waiters listen on one signal in the benchmarks: that is not a leak.
  setMaxListeners(0, controller.signal);
  return {
    cancel: new SignalCancel(controller.signal),
    abort: (reason) => {
      controller.abort(reason);
    },
  };
}
