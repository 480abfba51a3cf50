import { CancelSource, type Cancellation } from '../core/cancellation.js';
import type { Pool } from '../core/semaphore.js';
import { OrderError, kindMessage } from './errors.js';

export interface AdmissionOptions {
  /** The courier pool whose wait queue is bounded. */
  courierPool: Pool;
  /** Orders admitted and not yet answered; a positive integer or Infinity. */
  maxInflightOrders: number;
  /** Orders allowed to wait for a courier slot; an integer >= 0 or Infinity. */
  courierQueueLimit: number;
  /** Sent as `Retry-After` with a refusal; a positive integer, 1 by default. */
  retryAfterSeconds?: number;
}

/** Admitted is a place taken by one order; {@link release} gives it back. */
export interface Admitted {
  readonly admitted: true;
  /** release gives the place back once the order is answered. Releasing twice throws. */
  release(): void;
}

/** Refused says why an order was not admitted: kind `overloaded` or `shutting_down`. */
export interface Refused {
  readonly admitted: false;
  readonly error: OrderError;
  readonly retryAfterSeconds: number;
}

/**
 * Admission decides, before any step of an order starts, whether the service takes it. An
 * order is refused with `overloaded` when the orders in flight have reached
 * `maxInflightOrders` or the courier wait queue has reached `courierQueueLimit`, and with
 * `shutting_down` once {@link close} has been called. A refusal costs a few comparisons and
 * disturbs nothing in flight.
 *
 * The queue is read from `Pool.waiting` at the moment of the decision. With the in-process
 * semaphore that reading is exact: an admitted order's courier step joins the queue
 * synchronously when the pipeline starts it, so the queue never exceeds the limit by more
 * than the orders admitted between two readings (none, when admit and run are called in the
 * same tick, as the HTTP route does). A distributed pool may report it with some lag.
 *
 * Draining: {@link close} refuses every new order, {@link drained} resolves once the last
 * admitted order has been answered, and {@link abortInflight} aborts {@link cancellation},
 * which every admitted order should take as a parent so it can be stopped at the drain
 * deadline.
 */
export class Admission {
  readonly maxInflightOrders: number;
  readonly courierQueueLimit: number;
  readonly retryAfterSeconds: number;
  readonly #courierPool: Pool;
  readonly #shutdown = new CancelSource();
  #inflight = 0;
  #closed = false;
  #refusedOverloaded = 0;
  #refusedShuttingDown = 0;
  #idle: (() => void)[] = [];
  readonly #overloaded: Refused;
  readonly #shuttingDown: Refused;

  /** Limits outside their ranges throw a RangeError. */
  constructor(options: AdmissionOptions) {
    const { maxInflightOrders, courierQueueLimit, retryAfterSeconds = 1 } = options;
    if (!isCount(maxInflightOrders) || maxInflightOrders < 1) {
      throw new RangeError(
        `maxInflightOrders must be a positive integer or Infinity, got ${maxInflightOrders}`,
      );
    }
    if (!isCount(courierQueueLimit)) {
      throw new RangeError(
        `courierQueueLimit must be an integer >= 0 or Infinity, got ${courierQueueLimit}`,
      );
    }
    if (!Number.isSafeInteger(retryAfterSeconds) || retryAfterSeconds < 1) {
      throw new RangeError(
        `retryAfterSeconds must be a positive integer, got ${retryAfterSeconds}`,
      );
    }
    this.maxInflightOrders = maxInflightOrders;
    this.courierQueueLimit = courierQueueLimit;
    this.retryAfterSeconds = retryAfterSeconds;
    this.#courierPool = options.courierPool;
    // Refusals are built once: shedding load must not cost a stack trace per request.
    this.#overloaded = refusal('overloaded', retryAfterSeconds);
    this.#shuttingDown = refusal('shutting_down', retryAfterSeconds);
  }

  /** inflight is the number of orders admitted and not yet released. */
  get inflight(): number {
    return this.#inflight;
  }

  /** refused counts the orders refused since start, by kind (read by the metrics). */
  get refused(): { overloaded: number; shutting_down: number } {
    return { overloaded: this.#refusedOverloaded, shutting_down: this.#refusedShuttingDown };
  }

  /** closed is true once {@link close} has been called: the service is draining. */
  get closed(): boolean {
    return this.#closed;
  }

  /** cancellation aborts when {@link abortInflight} is called; admitted orders link to it. */
  get cancellation(): Cancellation {
    return this.#shutdown;
  }

  /**
   * admit takes a place for one order, or refuses it: `shutting_down` once closed, else
   * `overloaded` when either limit is reached. A refusal changes nothing but {@link refused}.
   */
  admit(): Admitted | Refused {
    if (this.#closed) {
      this.#refusedShuttingDown++;
      return this.#shuttingDown;
    }
    const pool = this.#courierPool;
    // The queue is full for a newcomer only if it would have to wait: with a limit of 0 an
    // order is still admitted while a courier slot is free.
    const queueFull = pool.waiting >= this.courierQueueLimit && pool.inUse >= pool.size;
    if (this.#inflight >= this.maxInflightOrders || queueFull) {
      this.#refusedOverloaded++;
      return this.#overloaded;
    }
    this.#inflight++;
    let released = false;
    return {
      admitted: true,
      release: () => {
        if (released) throw new Error('Admission: place released twice');
        released = true;
        if (--this.#inflight === 0) this.#notifyIdle();
      },
    };
  }

  /** close refuses every order from now on with `shutting_down`. Closing twice does nothing. */
  close(): void {
    this.#closed = true;
  }

  /** drained resolves once no admitted order is in flight (at once if none is). */
  drained(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * abortInflight aborts {@link cancellation} with a `shutting_down` error, so every order
   * linked to it stops and answers. Only the first call has an effect.
   */
  abortInflight(): void {
    this.#shutdown.abort(new OrderError('shutting_down', kindMessage('shutting_down')));
  }

  #notifyIdle(): void {
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }
}

function refusal(kind: 'overloaded' | 'shutting_down', retryAfterSeconds: number): Refused {
  const error = new OrderError(kind, kindMessage(kind));
  return { admitted: false, error, retryAfterSeconds };
}

function isCount(value: number): boolean {
  return value === Infinity || (Number.isSafeInteger(value) && value >= 0);
}
