import { CancelSource, type Cancellation } from '../core/cancellation.js';
import { refusalOf, type OrderAnswer } from './order-answer.js';
import { OrderError, kindMessage } from '../order/errors.js';
import type { MeasuredPool } from './measured-pool.js';
import { OrderedTimes, type TimeEntry } from './ordered-times.js';

export interface AdmissionOptions {
  /**
   * The courier pool the orders' steps use, measured: admission reads its slots, holders and
   * mean hold, and is told of each admitted order's grant through {@link Admitted.courierGranted}.
   */
  readonly courierPool: MeasuredPool;
  /** How long a store write issued now waits before it is committed, in milliseconds. */
  readonly storeBacklogMs: () => number;
  /** Orders admitted and not yet done; a positive integer or Infinity. A memory guard. */
  readonly maxInflightOrders: number;
  /** Sent as `Retry-After` with a refusal; a positive integer. */
  readonly retryAfterSeconds: number;
  /**
   * The target of the courier wait (CoDel's), in milliseconds: once the wait has stayed above
   * it for {@link overloadWindowMs} while orders are refused, a standing queue, the wait
   * admitted is at most this.
   */
  readonly overloadWaitMs: number;
  /** How long the courier wait must stay above {@link overloadWaitMs} to count as standing. */
  readonly overloadWindowMs: number;
  /** The clock, in milliseconds; `performance.now` by default. The pool's must be the same. */
  readonly now?: (() => number) | undefined;
}

/**
 * Admitted is a place taken by one order. The service tells it when the order's courier is
 * granted and when its steps have settled (both optional: an order may end without either),
 * and {@link release} gives the place back once the order is done.
 */
export interface Admitted {
  readonly admitted: true;
  /**
   * courierGranted tells that the order holds its courier, after `poolWaitMs` in the pool's
   * queue: it no longer counts in the queue ahead of later orders. Only the first call counts;
   * a call after {@link release} does nothing.
   */
  courierGranted(poolWaitMs: number): void;
  /** stepsSettled tells that every step of the order has settled; only the first call counts. */
  stepsSettled(): void;
  /** release gives the place back once the order is done. Releasing twice throws. */
  release(): void;
}

/** Refused is the answer to an order that was not admitted: `overloaded` or `shutting_down`. */
export interface Refused {
  readonly admitted: false;
  readonly answer: OrderAnswer;
}

/** Weight of the newest sample in the moving averages: about the last 32 orders count. */
const sampleWeight = 1 / 32;
/**
 * How fast the margin forgets its peak, per order measured: it halves in about 700 orders,
 * so it stands for the worst error of the last thousand or so (a 99.9th percentile)...
 */
const marginDecay = 1 - 1 / 1024;
/**
 * ...or in 30 s, whichever comes first: after a stall that inflated it, few orders are
 * admitted, and a margin forgotten only order by order would keep refusing for minutes.
 */
const marginHalfLifeMs = 30_000;

/**
 * Admission decides, before any step of an order starts, whether the service takes it: it
 * refuses, with `overloaded`, the orders that could not finish before their deadline, and
 * keeps a standing queue short. With `shutting_down` once {@link close} has been called; and
 * with `overloaded` any order beyond `maxInflightOrders` in flight, a bound on memory.
 *
 * The queue ahead of an order is every order admitted and not yet holding a courier, whether
 * it has reached the courier pool or is still being recorded (and the pool's waiters of other
 * instances): an order stops counting when its courier is granted, or when it ends without
 * one. So a burst is seen as it is admitted, not once it reaches the pool. An order that
 * finds a courier free is admitted (its deadline not passed). Else its courier wait `w` is
 * estimated (see {@link #waitMs}), and it is admitted if
 *
 *     max(unqueued, w + hold) + finish + margin ≤ time left before its deadline
 *
 * where `unqueued` is how long the steps of an order that did not wait took (its own work
 * other than the courier's), `hold` the mean courier hold, `finish` how long recording an
 * outcome takes (moving averages of admitted orders), and `margin` the largest recent error
 * of the predicted wait: each admitted order's wait for its courier is compared with what was
 * predicted (an order cut off still waiting waited at least until its deadline), and the
 * margin is the larger of the peak excess and, for the error that grows with the wait (each
 * hold waited for running a little long), the peak excess of the orders that queued near
 * their deadline (predicted to take over half their time) as a share of their prediction,
 * times this one; both peaks decay by half in about 700 orders or 30 s, whichever comes
 * first. It is at least three deviations of the sum of the holds the order waits for and its
 * own (see {@link MeasuredPool.holdDeviationMs}), as if independent. The rest of an order's
 * time is its own work (a step held up upstream): refusing queued orders would not shorten
 * it, so its error is not scored.
 *
 * Standing queue: once the courier wait (from admission) of every order served has stayed
 * above `overloadWaitMs` for `overloadWindowMs` (CoDel's rule) while orders are being refused
 * (an order was refused within the window: more arrive than can finish), the wait admitted is
 * at most `overloadWaitMs`, until a window passes with no refusal or no order is left ahead and a
 * courier is free. More orders are arriving than the couriers serve, so a longer queue would
 * serve no more of them: it would only make each admitted order wait, and hold its memory,
 * longer. A queue that stands but refuses nothing (clients that wait for their answers before
 * sending more, bursts the couriers absorb within the deadline) is not capped, nor is a queue
 * that refuses without standing: a single refusal never sets the cap.
 *
 * Cold start: before any hold is measured, the hold is the age of the oldest courier held (a
 * lower bound), and predictions are not scored for the margin.
 *
 * A decision costs a few arithmetic operations; a refusal allocates nothing and disturbs
 * nothing in flight.
 *
 * Draining: {@link close} refuses every new order, {@link drained} resolves once the last
 * admitted order is done, and {@link abortInflight} aborts {@link cancellation}, which every
 * admitted order takes as a parent so it can be stopped at the drain deadline.
 */
export class Admission {
  readonly maxInflightOrders: number;
  readonly retryAfterSeconds: number;
  readonly overloadWaitMs: number;
  readonly overloadWindowMs: number;
  readonly #pool: MeasuredPool;
  readonly #storeBacklogMs: () => number;
  readonly #now: () => number;
  readonly #shutdown = new CancelSource();
  #inflight = 0;
  /** When each order admitted and not holding a courier yet (nor done) was admitted. */
  readonly #ahead = new OrderedTimes();
  #closed = false;
  #refusedOverloaded = 0;
  #refusedShuttingDown = 0;
  #refusedStandingQueue = 0;
  #idle: (() => void)[] = [];
  readonly #overloaded: Refused;
  readonly #shuttingDown: Refused;
  /** From admission to reaching the pool (recording the order's start). */
  #reachMs = Number.NaN;
  /** From admission to every step settled, for an order that found a courier free. */
  #unqueuedMs = Number.NaN;
  /** From every step settled to done (recording the outcome). */
  #finishMs = Number.NaN;
  /** The peak excess of an order's time to done over its prediction, in milliseconds. */
  #marginMs = 0;
  /** The peak of that excess as a share of the prediction, over orders that queued. */
  #marginShare = 0;
  /** When the margin was last measured: it decays with time from then (see marginHalfLifeMs). */
  #marginSince = 0;
  /** Since when every courier wait has been above the target; NaN when the last was not. */
  #aboveSince = Number.NaN;
  /** When an order was last refused as `overloaded`. */
  #refusedAt = -Infinity;
  #capped = false;

  /** Limits outside their ranges throw a RangeError. */
  constructor(options: AdmissionOptions) {
    const { maxInflightOrders, retryAfterSeconds, overloadWaitMs, overloadWindowMs } = options;
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
      ['overloadWaitMs', overloadWaitMs],
      ['overloadWindowMs', overloadWindowMs],
    ] as const) {
      if (!Number.isFinite(value) || value < 0) {
        throw new RangeError(`${name} must be a finite number ≥ 0, got ${value}`);
      }
    }
    this.maxInflightOrders = maxInflightOrders;
    this.retryAfterSeconds = retryAfterSeconds;
    this.overloadWaitMs = overloadWaitMs;
    this.overloadWindowMs = overloadWindowMs;
    this.#pool = options.courierPool;
    this.#storeBacklogMs = options.storeBacklogMs;
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

  /** queued is the number of admitted orders not holding a courier yet and not done. */
  get queued(): number {
    return this.#ahead.size;
  }

  /** refused counts the orders refused since start, by kind (read by the metrics). */
  get refused(): { overloaded: number; shutting_down: number } {
    return { overloaded: this.#refusedOverloaded, shutting_down: this.#refusedShuttingDown };
  }

  /**
   * refusedStandingQueue counts the `overloaded` refusals of orders that would have been
   * admitted but for the standing-queue cap (the rest could not finish in time, or met the
   * in-flight bound).
   */
  get refusedStandingQueue(): number {
    return this.#refusedStandingQueue;
  }

  /** marginMs is the margin a prediction of `predictedMs` gets now (see the class). */
  marginMs(predictedMs: number): number {
    return this.#marginAt(this.#now(), predictedMs);
  }

  /** marginAt is the margin a prediction of `predictedMs` gets at `now`. */
  #marginAt(now: number, predictedMs: number): number {
    const decay = 2 ** ((this.#marginSince - now) / marginHalfLifeMs);
    return Math.max(this.#marginMs, this.#marginShare * predictedMs) * decay;
  }

  /**
   * overloaded is true while a standing queue caps the wait admitted at
   * {@link overloadWaitMs} (see the class).
   */
  get overloaded(): boolean {
    if (this.#ahead.size === 0 && this.#pool.position(0) < 0) this.#uncap();
    return this.#cappedAt(this.#now());
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
   * it: `shutting_down` once closed; else `overloaded` at the in-flight bound, when it could
   * not finish in time, or when a standing queue caps the wait (see the class). A refusal
   * changes nothing but the counts of refusals.
   */
  admit(remainingMs: number): Admitted | Refused {
    if (this.#closed) {
      this.#refusedShuttingDown++;
      return this.#shuttingDown;
    }
    const now = this.#now();
    if (this.#inflight >= this.maxInflightOrders) return this.#refuse(now);
    const pool = this.#pool;
    const ahead = this.#ahead;
    const position = pool.position(ahead.size);
    const backlogMs = this.#storeBacklogMs();
    const reachMs = Math.max(backlogMs, orZero(this.#reachMs));
    const finishMs = Math.max(backlogMs, orZero(this.#finishMs));
    const holdMs = pool.holdEstimateMs();
    const unqueuedMs = orZero(this.#unqueuedMs);
    let waitMs = reachMs;
    let predictedMs: number;
    if (position < 0) {
      if (ahead.size === 0) this.#uncap();
      if (!(remainingMs > 0)) return this.#refuse(now);
      predictedMs = Math.max(unqueuedMs, waitMs + holdMs) + finishMs;
    } else {
      waitMs = Math.max(reachMs, this.#waitMs(position, holdMs, reachMs, now));
      predictedMs = Math.max(unqueuedMs, waitMs + holdMs) + finishMs;
      // The holds waited for, and its own, each differ from the mean by about the deviation:
      // three deviations of their sum, as if independent, bound its error but in 1 of 1000.
      const holds = Math.floor(position / pool.size) + 2;
      const spreadMs = 3 * pool.holdDeviationMs * Math.sqrt(holds);
      const marginMs = Math.max(this.#marginAt(now, predictedMs), spreadMs);
      if (predictedMs + marginMs > remainingMs) return this.#refuse(now);
      if (waitMs > this.overloadWaitMs && this.#cappedAt(now)) {
        this.#refusedStandingQueue++;
        return this.#refuse(now);
      }
    }
    this.#inflight++;
    // A wait predicted before holds and the way to the pool were measured is a guess: its
    // error says nothing of the estimate's.
    const scored = pool.holdsMeasured && this.#reachMs >= 0;
    return new Place(
      this.#measure,
      ahead.add(now),
      position < 0,
      scored ? waitMs : Number.NaN,
      predictedMs,
      remainingMs,
    );
  }

  /**
   * waitMs estimates the courier wait of an order at `position` (see
   * {@link MeasuredPool.position}, ≥ 0): each slot serves one holder per `holdMs` in turn,
   * so the order is served in round `⌊position / size⌋`, on the slot that frees up
   * `position mod size`-th. That is a holder's (see {@link MeasuredPool.residualMs}), or a
   * free slot's: taken first by an order admitted before and still on its way to the pool,
   * it frees up once that order has reached the pool (`reachMs` after its admission; as long
   * again as it has taken once it is overdue) and held its courier. O(1), allocation-free.
   */
  #waitMs(position: number, holdMs: number, reachMs: number, now: number): number {
    const pool = this.#pool;
    const size = pool.size;
    const rounds = Math.floor(position / size);
    const rank = position - rounds * size;
    const inUse = Math.min(size, pool.inUse);
    let residualMs: number;
    if (rank < inUse) {
      residualMs = pool.residualMs(rank, holdMs);
    } else {
      const age = now - this.#ahead.nth(rank - inUse);
      // Overdue, it is taken to need as long again as it has already taken (as a holder's
      // age bounds a hold): a burst keeps the process busy before the first of it gets there.
      const onItsWayMs = Number.isNaN(age) ? reachMs : age < reachMs ? reachMs - age : age;
      residualMs = onItsWayMs + holdMs;
    }
    return rounds * holdMs + residualMs;
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

  #refuse(now: number): Refused {
    this.#refusedOverloaded++;
    this.#refusedAt = now;
    return this.#overloaded;
  }

  /**
   * cappedAt tells whether the standing-queue cap holds at `now`. It is set once every
   * courier wait has been above the target for the window while orders are being refused (the
   * couriers cannot serve what arrives), and lifted once a window passes with no refusal, or
   * the queue is gone. While it holds, waits at or under the target do not lift it: they are
   * the cap at work.
   */
  #cappedAt(now: number): boolean {
    if (this.#capped) {
      if (now - this.#refusedAt >= this.overloadWindowMs) this.#uncap();
    } else if (
      now - this.#aboveSince >= this.overloadWindowMs &&
      now - this.#refusedAt < this.overloadWindowMs
    ) {
      this.#capped = true;
    }
    return this.#capped;
  }

  /**
   * score folds the error of an order's predicted courier wait into the margin. The wait
   * alone is scored: the rest of an order's time is its own work (a step held up upstream, an
   * order cut off at its deadline for it), which refusing queued orders would not shorten.
   */
  #score(place: Place, errorMs: number, now: number): void {
    const decay = Math.min(marginDecay, 2 ** ((this.#marginSince - now) / marginHalfLifeMs));
    this.#marginSince = now;
    this.#marginMs = Math.max(errorMs, this.#marginMs * decay);
    // An order that queued near its deadline waited for many holds: its error grows with its
    // wait (every hold ran a little long), and scales to each prediction.
    this.#marginShare =
      !place.unqueued && place.predictedMs * 2 >= place.remainingMs
        ? Math.max(errorMs / place.predictedMs, this.#marginShare * decay)
        : this.#marginShare * decay;
  }

  #uncap(): void {
    this.#capped = false;
    this.#aboveSince = Number.NaN;
  }

  /**
   * What a {@link Place} reports, measured into the estimate. Arrow functions in the class
   * body, so they reach its private state without making it public.
   */
  readonly #measure: Measure = {
    now: () => this.#now(),
    granted: (place, poolWaitMs) => {
      this.#ahead.remove(place.entry);
      const now = this.#now();
      const waitedMs = now - place.admittedAt;
      this.#reachMs = average(this.#reachMs, waitedMs - poolWaitMs);
      // CoDel: the queue stands once every wait has been above the target for a window. The
      // wait counts from admission: a queue may stand in the store as well as in the pool.
      if (waitedMs <= this.overloadWaitMs) this.#aboveSince = Number.NaN;
      else if (Number.isNaN(this.#aboveSince)) this.#aboveSince = now;
      if (place.predictedWaitMs >= 0) this.#score(place, waitedMs - place.predictedWaitMs, now);
    },
    settled: (place) => {
      if (place.unqueued) {
        this.#unqueuedMs = average(this.#unqueuedMs, place.settledAt - place.admittedAt);
      }
    },
    done: (place, granted) => {
      const now = this.#now();
      if (!granted) this.#ahead.remove(place.entry);
      if (place.settledAt >= 0) this.#finishMs = average(this.#finishMs, now - place.settledAt);
      // Cut off at its deadline while still waiting: it waited at least that long.
      const waitedMs = now - place.admittedAt;
      if (!granted && place.predictedWaitMs >= 0 && waitedMs >= place.remainingMs) {
        this.#score(place, waitedMs - place.predictedWaitMs, now);
      }
      if (--this.#inflight === 0) {
        const idle = this.#idle;
        this.#idle = [];
        for (const resolve of idle) resolve();
      }
    },
  };
}

/** orZero is `value`, or 0 for NaN (a quantity not measured yet). */
function orZero(value: number): number {
  return Number.isNaN(value) ? 0 : value;
}

/** average folds `sample` into the moving average `mean` (NaN before the first sample). */
function average(mean: number, sample: number): number {
  return Number.isNaN(mean) ? sample : mean + (sample - mean) * sampleWeight;
}

/** Measure is what admission learns from the places it gave (see {@link Admission}). */
interface Measure {
  now(): number;
  granted(place: Place, poolWaitMs: number): void;
  settled(place: Place): void;
  done(place: Place, granted: boolean): void;
}

/** Place is the {@link Admitted} of one order. */
class Place implements Admitted {
  readonly admitted = true;
  readonly #measure: Measure;
  /** The order's entry among the orders ahead of later ones, until its courier is granted. */
  readonly entry: TimeEntry;
  readonly admittedAt: number;
  /** Whether a courier was free for the order when it was admitted. */
  readonly unqueued: boolean;
  /** The predicted courier wait (from admission), or NaN when it is not scored. */
  readonly predictedWaitMs: number;
  /** The predicted time from admission to done. */
  readonly predictedMs: number;
  /** The time it had left before its deadline when admitted. */
  readonly remainingMs: number;
  /** When every step settled; NaN until then. */
  settledAt = Number.NaN;
  #granted = false;
  #released = false;

  constructor(
    measure: Measure,
    entry: TimeEntry,
    unqueued: boolean,
    predictedWaitMs: number,
    predictedMs: number,
    remainingMs: number,
  ) {
    this.#measure = measure;
    this.entry = entry;
    this.admittedAt = entry.time;
    this.unqueued = unqueued;
    this.predictedWaitMs = predictedWaitMs;
    this.predictedMs = predictedMs;
    this.remainingMs = remainingMs;
  }

  courierGranted(poolWaitMs: number): void {
    if (this.#granted || this.#released) return;
    this.#granted = true;
    this.#measure.granted(this, poolWaitMs);
  }

  stepsSettled(): void {
    if (this.settledAt >= 0 || this.#released) return;
    this.settledAt = this.#measure.now();
    this.#measure.settled(this);
  }

  release(): void {
    if (this.#released) throw new Error('Admission: place released twice');
    this.#released = true;
    this.#measure.done(this, this.#granted);
  }
}
