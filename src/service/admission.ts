import { CancelSource, type Cancellation } from '../core/cancellation.js';
import { refusalOf, type OrderAnswer } from './order-answer.js';
import { OrderError, kindMessage } from '../order/errors.js';

export interface AdmissionOptions {
  /**
   * Estimates how long an order admitted now would wait, in milliseconds: for a courier
   * slot, and for the store around the steps.
   */
  expectedWaitMs: () => number;
  /** Orders admitted and not yet done; a positive integer or Infinity. A memory guard. */
  maxInflightOrders: number;
  /** Sent as `Retry-After` with a refusal; a positive integer, 1 by default. */
  retryAfterSeconds?: number;
  /**
   * The longest expected wait admitted while the service is overloaded (an order was refused
   * in the last {@link overloadWindowMs}), in milliseconds; 50 by default.
   */
  overloadedWaitMs?: number;
  /** How long after a refusal the service counts as overloaded, in milliseconds; 1000 by default. */
  overloadWindowMs?: number;
  /** The clock, in milliseconds; `performance.now` by default. */
  now?: () => number;
}

/** Admitted is a place taken by one order; {@link release} gives it back. */
export interface Admitted {
  readonly admitted: true;
  /** release gives the place back once the order is done. Releasing twice throws. */
  release(): void;
}

/** Refused is the answer to an order that was not admitted: `overloaded` or `shutting_down`. */
export interface Refused {
  readonly admitted: false;
  readonly answer: OrderAnswer;
}

/**
 * Share of an order's remaining time that its expected wait may take. The rest is for its
 * own work and for the estimate's error: under load timers fire late and collections pause
 * the process, so a queue filled up to the deadline would miss it.
 */
const deadlineShare = 0.5;

/**
 * Admission decides, before any step of an order starts, whether the service takes it: it
 * refuses what cannot finish in time. An order is refused with `overloaded` when the
 * expected wait before it can be served (see {@link AdmissionOptions.expectedWaitMs}) exceeds
 * half the time left before its deadline (the rest is for its own work and the estimate's
 * error), or when `maxInflightOrders` orders are in flight (a bound on memory, whatever the
 * estimate says); and with `shutting_down` once {@link close} has been called. A refusal
 * costs a few arithmetic operations and disturbs nothing in flight.
 *
 * Overload: once an order has been refused, and until none has been for
 * `overloadWindowMs` (1 s), the wait admitted is at most `overloadedWaitMs` (50 ms), as CoDel
 * keeps a queue short once it stands. More orders are arriving than the couriers can serve,
 * so a longer queue would not serve more of them: it would only make each admitted order wait
 * longer (and keep its memory longer, which the collector pays for on every request, refusals
 * included). A burst or a steady load the couriers keep up with, however long its queue,
 * refuses nothing, so it never meets the shorter limit.
 *
 * Draining: {@link close} refuses every new order, {@link drained} resolves once the last
 * admitted order is done, and {@link abortInflight} aborts {@link cancellation}, which every
 * admitted order takes as a parent so it can be stopped at the drain deadline.
 */
export class Admission {
  readonly maxInflightOrders: number;
  readonly retryAfterSeconds: number;
  readonly overloadedWaitMs: number;
  readonly overloadWindowMs: number;
  readonly #expectedWaitMs: () => number;
  readonly #now: () => number;
  /** When an order was last refused as `overloaded` (by {@link #now}). */
  #refusedAt = -Infinity;
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
    const {
      maxInflightOrders,
      retryAfterSeconds = 1,
      overloadedWaitMs = 50,
      overloadWindowMs = 1000,
    } = options;
    if (
      maxInflightOrders !== Infinity &&
      (!Number.isSafeInteger(maxInflightOrders) || maxInflightOrders < 1)
    ) {
      throw new RangeError(
        `maxInflightOrders must be a positive integer or Infinity, got ${maxInflightOrders}`,
      );
    }
    if (!Number.isSafeInteger(retryAfterSeconds) || retryAfterSeconds < 1) {
      throw new RangeError(
        `retryAfterSeconds must be a positive integer, got ${retryAfterSeconds}`,
      );
    }
    for (const [name, value] of [
      ['overloadedWaitMs', overloadedWaitMs],
      ['overloadWindowMs', overloadWindowMs],
    ] as const) {
      if (!Number.isFinite(value) || value < 0) {
        throw new RangeError(`${name} must be a finite number ≥ 0, got ${value}`);
      }
    }
    this.maxInflightOrders = maxInflightOrders;
    this.retryAfterSeconds = retryAfterSeconds;
    this.overloadedWaitMs = overloadedWaitMs;
    this.overloadWindowMs = overloadWindowMs;
    this.#expectedWaitMs = options.expectedWaitMs;
    this.#now = options.now ?? (() => performance.now());
    // Refusals are built once: shedding load must not cost an allocation per request.
    this.#overloaded = { admitted: false, answer: refusalOf('overloaded', retryAfterSeconds) };
    this.#shuttingDown = {
      admitted: false,
      answer: refusalOf('shutting_down', retryAfterSeconds),
    };
  }

  /** inflight is the number of orders admitted and not yet released. */
  get inflight(): number {
    return this.#inflight;
  }

  /** refused counts the orders refused since start, by kind (read by the metrics). */
  get refused(): { overloaded: number; shutting_down: number } {
    return { overloaded: this.#refusedOverloaded, shutting_down: this.#refusedShuttingDown };
  }

  /**
   * overloaded is true while an order refused as `overloaded` is less than
   * {@link overloadWindowMs} old: the wait admitted is then at most {@link overloadedWaitMs}.
   */
  get overloaded(): boolean {
    return this.#overloadedAt(this.#now());
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
   * admit takes a place for an order with `remainingMs` left before its deadline, or refuses
   * it: `shutting_down` once closed, else `overloaded` when it could not finish in time, the
   * service is overloaded and its wait would exceed {@link overloadedWaitMs}, or the in-flight
   * bound is reached. A refusal changes nothing but {@link refused} and {@link overloaded}.
   */
  admit(remainingMs: number): Admitted | Refused {
    if (this.#closed) {
      this.#refusedShuttingDown++;
      return this.#shuttingDown;
    }
    const now = this.#now();
    let limitMs = remainingMs * deadlineShare;
    if (this.#overloadedAt(now) && limitMs > this.overloadedWaitMs) {
      limitMs = this.overloadedWaitMs;
    }
    if (this.#inflight >= this.maxInflightOrders || this.#expectedWaitMs() > limitMs) {
      this.#refusedAt = now;
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

  /** #overloadedAt tells whether an order was refused as `overloaded` within the window before `now`. */
  #overloadedAt(now: number): boolean {
    return now - this.#refusedAt < this.overloadWindowMs;
  }

  #notifyIdle(): void {
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }
}
