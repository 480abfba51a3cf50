import { CancelSource, link, type Cancellation, type ParentCancellation } from './cancellation.js';
import { isPromiseLike } from './is-promise-like.js';

/** A task of a group: it receives the group's shared cancellation. */
export type Task = (cancel: Cancellation) => unknown;

/**
 * TaskSettled is told how a task ended, before the group counts it as settled: `failed` and
 * the error, or not failed. It should not throw; if it does, the group fails with what it
 * threw (unless it had failed already) and still counts the task.
 */
export type TaskSettled = (failed: boolean, error?: unknown) => void;

/**
 * TaskGroup runs async tasks that share one cancellation: the errgroup-with-context of this
 * project.
 *
 * The first task to fail aborts the shared cancellation with its error, so its siblings stop;
 * that error is recorded once and is what {@link wait} rejects with. A parent (a request
 * deadline, a client that went away) aborts the group too, and its reason is then the
 * group's error. {@link wait} settles only after every task has settled: when it returns,
 * nothing the group started is still running.
 *
 * When the group ends, its link to the parent is removed and its own cancellation is
 * aborted (as errgroup's Wait cancels its context), so no listener outlives it.
 */
export class TaskGroup {
  readonly #source = new CancelSource();
  readonly #unlinkParent: () => void;
  #pending = 0;
  #failed = false;
  #error: unknown = undefined;
  #waiting = false;
  #resolveWait: (() => void) | undefined = undefined;
  #rejectWait: ((error: unknown) => void) | undefined = undefined;

  constructor(parent?: ParentCancellation) {
    this.#unlinkParent = parent === undefined ? noop : link(parent, this.#source);
    if (this.#source.aborted) this.#fail(this.#source.reason);
  }

  /** cancellation is shared by every task of the group. */
  get cancellation(): Cancellation {
    return this.#source;
  }

  /** pending is the number of tasks started and not yet settled. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * go starts `task` at once with the group's cancellation. A task that throws synchronously
   * or returns a rejected promise fails the group; a task that returns a non-promise value
   * succeeds with it. Calling go after {@link wait} has been called throws an Error.
   *
   * `settled`, if given, is told how the task ended before the group counts it, from the
   * group's own callback: a caller that records each task's result needs no callback (and
   * no promise turn) of its own, and the group settles only once every result is recorded.
   */
  go(task: Task, settled?: TaskSettled): void {
    if (this.#waiting) throw new Error('TaskGroup.go called after wait');
    this.#pending++;
    const onFulfilled =
      settled === undefined
        ? this.#onFulfilled
        : (): void => {
            this.#tell(settled, false, undefined);
            this.#onFulfilled();
          };
    const onRejected =
      settled === undefined
        ? this.#onRejected
        : (error: unknown): void => {
            this.#tell(settled, true, error);
            this.#onRejected(error);
          };
    let result: unknown;
    try {
      result = task(this.#source);
    } catch (error) {
      onRejected(error);
      return;
    }
    if (result instanceof Promise) {
      result.then(onFulfilled, onRejected);
    } else if (isPromiseLike(result)) {
      // A foreign thenable may throw from then() or call back twice: Promise.resolve
      // adopts it through the standard guards, so the group counts it exactly once.
      Promise.resolve(result).then(onFulfilled, onRejected);
    } else {
      onFulfilled();
    }
  }

  /**
   * abort cancels the group with `reason` as if a task had failed with it. Only the first
   * failure or abort is recorded.
   */
  abort(reason: unknown): void {
    this.#fail(reason);
  }

  /**
   * wait resolves once every task has settled and rejects, then, with the group's first
   * error. It may be called once.
   */
  wait(): Promise<void> {
    if (this.#waiting) return Promise.reject(new Error('TaskGroup.wait called twice'));
    this.#waiting = true;
    if (this.#pending === 0) {
      this.#finish();
      return this.#failed ? Promise.reject(this.#error) : Promise.resolve();
    }
    // Settled straight from the last task's callback: one promise and no extra turn, where
    // chaining a then() that returns a promise would cost three.
    return new Promise<void>((resolve, reject) => {
      this.#resolveWait = resolve;
      this.#rejectWait = reject;
    });
  }

  #finish(): void {
    this.#unlinkParent();
    // A parent's abort reaches the source through link, not #fail: it is still the group's
    // error when every task ignored it and succeeded.
    if (this.#source.aborted) this.#fail(this.#source.reason);
    this.#source.abort(groupDone);
  }

  #settled(): void {
    if (--this.#pending !== 0 || !this.#waiting) return;
    this.#finish();
    if (this.#failed) this.#rejectWait?.(this.#error);
    else this.#resolveWait?.();
  }

  #tell(settled: TaskSettled, failed: boolean, error: unknown): void {
    try {
      settled(failed, error);
    } catch (thrown) {
      this.#fail(thrown);
    }
  }

  #fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    // A parent's abort already on the source came first: keep it over a task's later error.
    this.#error = this.#source.aborted ? this.#source.reason : error;
    this.#source.abort(error);
  }

  readonly #onFulfilled = (): void => {
    this.#settled();
  };

  readonly #onRejected = (error: unknown): void => {
    this.#fail(error);
    this.#settled();
  };
}

/** The reason a group's cancellation carries when it ended without a failure. */
const groupDone = new Error('TaskGroup: the group has ended');

function noop(): void {
  // No parent to unlink.
}
