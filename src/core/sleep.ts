import type { Cancellation } from './cancellation.js';

/**
 * sleep resolves after `ms` milliseconds, or rejects with the cancellation's reason as soon
 * as it aborts. On abort the timer is cleared; on time-out the abort listener is removed:
 * nothing outlives the call. A cancellation already aborted rejects at once without starting
 * a timer. `ms` of 0 still yields to the event loop once, unless aborted.
 */
export function sleep(ms: number, cancel?: Cancellation): Promise<void> {
  if (!Number.isFinite(ms) || ms < 0) {
    return Promise.reject(new RangeError(`sleep: ms must be a finite number >= 0, got ${ms}`));
  }
  if (cancel === undefined) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
  if (cancel.aborted) return Promise.reject(cancel.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      removeListener();
      resolve();
    }, ms);
    const removeListener = cancel.onAbort((reason) => {
      clearTimeout(timer);
      reject(reason);
    });
  });
}
