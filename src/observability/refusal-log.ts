import type { FastifyBaseLogger } from 'fastify';

/** The window of {@link RefusalLog}, in milliseconds, unless told otherwise. */
export const refusalLogWindowMs = 1000;

/**
 * RefusalLog counts the orders refused as `overloaded` and writes one line per window with
 * the count, instead of one line per refused request: under overload most requests are
 * refused, and a line for each would flood the logs (and spend the server's time on them)
 * exactly when the service has none to spare. The first refusal of a quiet period opens a
 * window; the line is written when it ends. {@link close} writes what is pending at once.
 * Every refusal is still counted by the metrics.
 */
export class RefusalLog {
  readonly windowMs: number;
  readonly #log: FastifyBaseLogger;
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  /** The window must be a positive finite number of milliseconds; else a RangeError. */
  constructor(log: FastifyBaseLogger, windowMs = refusalLogWindowMs) {
    if (!Number.isFinite(windowMs) || windowMs <= 0) {
      throw new RangeError(`RefusalLog window must be a positive number, got ${windowMs}`);
    }
    this.#log = log;
    this.windowMs = windowMs;
  }

  /** count adds one refusal to the current window, opening one if none is. */
  count(): void {
    this.#count++;
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#write();
    }, this.windowMs);
    // A pending count must not keep the process alive; close writes it.
    this.#timer.unref();
  }

  /** close writes the pending count, if any, and stops the window. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#write();
  }

  #write(): void {
    if (this.#count === 0) return;
    this.#log.warn(
      { kind: 'overloaded', refused: this.#count, window_ms: this.windowMs },
      'orders refused as overloaded',
    );
    this.#count = 0;
  }
}
