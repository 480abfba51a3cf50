/**
 * Cancellation is the read side of a {@link CancelSource}: what a task sees of the
 * cancellation it shares with its siblings.
 *
 * It is a light stand-in for `AbortSignal`: checking it and subscribing to it cost a
 * field read and an array push, where creating and aborting an `AbortSignal` costs
 * microseconds in Node 20. A real `AbortSignal` is created only when a task reads
 * {@link Cancellation.signal} (to hand it to `fetch` and the like), and it aborts with
 * the same reason.
 */
export interface Cancellation {
  /** True once the source has been aborted. Never goes back to false. */
  readonly aborted: boolean;
  /** The abort reason (the first failure, the deadline, the client going away); undefined until aborted. */
  readonly reason: unknown;
  /**
   * A standard `AbortSignal` that aborts with {@link reason}. Created on first read; already
   * aborted if the source is.
   */
  readonly signal: AbortSignal;
  /**
   * onAbort calls `listener(reason)` once when the source aborts, or never. If the source is
   * already aborted the listener is not called: check {@link aborted} first. Returns a function
   * that removes the listener; calling it more than once, or after the abort, does nothing.
   */
  onAbort(listener: (reason: unknown) => void): () => void;
  /** throwIfAborted throws {@link reason} if the source is aborted. */
  throwIfAborted(): void;
}

type Listener = (reason: unknown) => void;

/**
 * CancelSource is the write side: it owns one cancellation and aborts it at most once.
 *
 * Listeners live in a Set, so removal is O(1) and a long-lived source that sees many
 * short subscriptions never grows. As with `EventTarget`, adding the same function twice
 * registers it once.
 */
export class CancelSource implements Cancellation {
  #aborted = false;
  #reason: unknown = undefined;
  #listeners: Set<Listener> | undefined = undefined;
  #controller: AbortController | undefined = undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** listenerCount is the number of listeners still registered (for leak tests). */
  get listenerCount(): number {
    return this.#listeners?.size ?? 0;
  }

  onAbort(listener: Listener): () => void {
    if (this.#aborted) return noop;
    const listeners = (this.#listeners ??= new Set());
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }

  throwIfAborted(): void {
    if (this.#aborted) throw this.#reason;
  }

  /**
   * abort records `reason` and calls every listener once, in registration order. Only the
   * first call has an effect; it returns true, later calls return false. A listener that
   * throws does not stop the others; its error is re-thrown asynchronously so it is seen,
   * not swallowed.
   */
  abort(reason: unknown): boolean {
    if (this.#aborted) return false;
    this.#aborted = true;
    this.#reason = reason;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners !== undefined) {
      for (const listener of listeners) {
        try {
          listener(reason);
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
      listeners.clear();
    }
    this.#controller?.abort(reason);
    return true;
  }

  /**
   * dispose drops every listener without calling them. The owner calls it when the work the
   * source guarded is over and nothing may be notified any more.
   */
  dispose(): void {
    this.#listeners?.clear();
    this.#listeners = undefined;
  }
}

function noop(): void {
  // Nothing to remove: the listener was never registered.
}

/** A parent a group can be linked to: a standard signal or another cancellation. */
export type ParentCancellation = AbortSignal | Cancellation;

/**
 * link makes `source` abort when `parent` does, with the parent's reason. If the parent is
 * already aborted, the source is aborted at once. Returns a function that removes the link;
 * callers must call it when the source's work ends, so a long-lived parent does not
 * accumulate listeners.
 */
export function link(parent: ParentCancellation, source: CancelSource): () => void {
  if (parent.aborted) {
    source.abort(parent.reason);
    return noop;
  }
  if (isAbortSignal(parent)) {
    const onAbort = (): void => {
      source.abort(parent.reason);
    };
    parent.addEventListener('abort', onAbort, { once: true });
    return () => {
      parent.removeEventListener('abort', onAbort);
    };
  }
  return parent.onAbort((reason) => source.abort(reason));
}

function isAbortSignal(value: ParentCancellation): value is AbortSignal {
  return value instanceof AbortSignal;
}
