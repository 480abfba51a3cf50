import { CancelSource, type Cancellation } from '../src/core/cancellation.js';
import { Semaphore, type Permit } from '../src/core/semaphore.js';
import { defaultConfig } from '../src/config.js';
import { Admission, type Admitted } from '../src/service/admission.js';
import { MeasuredPool } from '../src/service/measured-pool.js';
import { row, type Row } from './report.js';
import { seededRandom } from './seeded-random.js';

/**
 * Admission judged against an oracle. A hand-made event loop on a clock of its own replays
 * arrival patterns through the real Admission over a real MeasuredPool and Semaphore, with
 * orders shaped as the service runs them: recorded (`reachMs`) before they reach the pool,
 * their courier held `holdMs` beside their other steps (`otherMs`), their outcome recorded
 * (`finishMs`), cut off at their deadline. For every order, admitted or refused, the oracle
 * says when it would have finished if admitted: given the queue ahead of it (the orders
 * holding a courier, and those admitted and not yet holding one, each with its known hold and
 * deadline), a FIFO queue with `poolSize` servers gives it exactly. A refused order that would
 * have finished in time was refused wrongly; an admitted order that finished late, or was
 * cut off, was admitted wrongly. An admitted order's real finish is also checked against the
 * oracle's, which later arrivals cannot change (the pool serves in order).
 */

/** SimOrder is one order of a pattern: when it arrives and how long its steps take. */
export interface SimOrder {
  readonly at: number;
  readonly holdMs: number;
  readonly otherMs: number;
  /** A warm-up order: served, not counted. */
  readonly warmup?: boolean;
}

/** Pattern is an arrival pattern and the service it meets. */
export interface Pattern {
  readonly name: string;
  readonly poolSize: number;
  readonly deadlineMs: number;
  /** From admission to reaching the pool: recording the order's start. */
  readonly reachMs: number;
  /** From the steps settled to done: recording the outcome. */
  readonly finishMs: number;
  readonly overloadWaitMs: number;
  readonly overloadWindowMs: number;
  /** The orders, by arrival time. */
  readonly orders: readonly SimOrder[];
  /**
   * Whether the bounds apply: a warm service (orders served before the pattern) and steps of
   * one known duration. Cold starts and mixed courier times are reported, not bounded.
   */
  readonly bounded?: boolean;
}

/** Judgement is how admission did on one pattern (warm-up orders left out). */
export interface Judgement {
  readonly pattern: string;
  readonly orders: number;
  readonly admitted: number;
  /** Orders judged by the deadline rule (not shed by the standing-queue cap) that were feasible. */
  readonly feasible: number;
  /** Of those, the ones refused. */
  readonly refusedFeasible: number;
  /** Orders the deadline rule admitted and the standing-queue cap refused. */
  readonly shedByCap: number;
  /** Admitted orders that finished after their deadline or were cut off at it. */
  readonly admittedMissed: number;
  /** Admitted orders whose real finish differs from the oracle's: 0 if the oracle is exact. */
  readonly oracleMismatches: number;
  /** Admission's margin at the end for a prediction of the whole deadline, in milliseconds. */
  readonly marginMs: number;
}

/** Run is one admitted order on its way through the simulated service. */
interface Run {
  readonly order: SimOrder;
  readonly place: Admitted;
  readonly cancel: CancelSource;
  readonly reachAt: number;
  readonly deadlineAt: number;
  /** The oracle's finish, Infinity when it says the order misses its deadline. */
  readonly oracleFinish: number;
  grantedAt: number;
  permit: Permit | undefined;
  courierDone: boolean;
  otherDone: boolean;
  settled: boolean;
  finishedAt: number;
  cutOff: boolean;
}

/** Event kinds, in the order they run at one instant: a courier done frees it first. */
const courierDone = 0;
const otherDone = 1;
const finish = 2;
const reach = 3;
const deadline = 4;
const arrival = 5;

interface SimEvent {
  readonly at: number;
  readonly kind: number;
  readonly seq: number;
  readonly run: () => void;
}

/** EventQueue is a binary min-heap of events by time, kind and then scheduling order. */
class EventQueue {
  readonly #heap: SimEvent[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(at: number, kind: number, run: () => void): void {
    const heap = this.#heap;
    heap.push({ at, kind, seq: this.#seq++, run });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as SimEvent, heap[parent] as SimEvent)) break;
      [heap[i], heap[parent]] = [heap[parent] as SimEvent, heap[i] as SimEvent];
      i = parent;
    }
  }

  pop(): SimEvent | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && before(heap[left] as SimEvent, heap[least] as SimEvent)) {
        least = left;
      }
      if (right < heap.length && before(heap[right] as SimEvent, heap[least] as SimEvent)) {
        least = right;
      }
      if (least === i) return top;
      [heap[i], heap[least]] = [heap[least] as SimEvent, heap[i] as SimEvent];
      i = least;
    }
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  if (a.at !== b.at) return a.at < b.at;
  if (a.kind !== b.kind) return a.kind < b.kind;
  return a.seq < b.seq;
}

/** settle lets every promise continuation queued so far run (the pool's grants). */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Judged is what the simulation needs of an admission: the real one, or the one before it. */
export interface Judged {
  admit(remainingMs: number): Admitted | { readonly admitted: false };
  readonly refusedStandingQueue: number;
  readonly inflight: number;
  marginMs(predictedMs: number): number;
}

/** The admission judged: `current` is the service's; `previous` the rule it replaced. */
export type Rule = 'current' | 'previous';

/**
 * PreviousAdmission is the rule this project's admission replaced, kept as the benchmark's
 * baseline: the expected wait is the pool's own queue, `(waiting + 1) / size × mean hold`
 * once every slot is held (a burst still being recorded is not in it), admitted up to half the
 * time left; after any refusal, and for a window without one, at most the cap.
 */
class PreviousAdmission implements Judged {
  readonly #pool: MeasuredPool;
  readonly #now: () => number;
  readonly #capMs: number;
  readonly #windowMs: number;
  #refusedAt = -Infinity;
  inflight = 0;
  refusedStandingQueue = 0;

  constructor(pool: MeasuredPool, now: () => number, capMs: number, windowMs: number) {
    this.#pool = pool;
    this.#now = now;
    this.#capMs = capMs;
    this.#windowMs = windowMs;
  }

  marginMs(): number {
    return Number.NaN;
  }

  admit(remainingMs: number): Admitted | { readonly admitted: false } {
    const pool = this.#pool;
    const now = this.#now();
    const waitMs = pool.inUse < pool.size ? 0 : ((pool.waiting + 1) / pool.size) * pool.meanHoldMs;
    let limitMs = remainingMs / 2;
    const capped = now - this.#refusedAt < this.#windowMs && limitMs > this.#capMs;
    if (capped) limitMs = this.#capMs;
    if (waitMs > limitMs) {
      if (capped && waitMs <= remainingMs / 2) this.refusedStandingQueue++;
      this.#refusedAt = now;
      return { admitted: false };
    }
    this.inflight++;
    let released = false;
    return {
      admitted: true,
      courierGranted: () => undefined,
      stepsSettled: () => undefined,
      release: () => {
        if (!released) this.inflight--;
        released = true;
      },
    };
  }
}

/**
 * judge replays `pattern` through the real admission (or, with `rule` 'previous', the rule it
 * replaced) and pool, and scores every decision against the oracle (see the file's comment).
 */
export async function judge(pattern: Pattern, rule: Rule = 'current'): Promise<Judgement> {
  const { poolSize, deadlineMs, reachMs, finishMs } = pattern;
  let now = 0;
  const clock = (): number => now;
  const runOf = new Map<Cancellation, Run>();
  const pool = new MeasuredPool(new Semaphore(poolSize), {
    now: clock,
    granted: (cancel, waitedMs) => {
      if (cancel !== undefined) runOf.get(cancel)?.place.courierGranted(waitedMs);
    },
  });
  const admission: Judged =
    rule === 'current'
      ? new Admission({
          courierPool: pool,
          storeBacklogMs: () => 0,
          maxInflightOrders: Infinity,
          retryAfterSeconds: 1,
          overloadWaitMs: pattern.overloadWaitMs,
          overloadWindowMs: pattern.overloadWindowMs,
          now: clock,
        })
      : new PreviousAdmission(pool, clock, pattern.overloadWaitMs, pattern.overloadWindowMs);
  const events = new EventQueue();
  /** Admitted orders not holding a courier yet and not cut off, in the pool's order. */
  let waiting: Run[] = [];
  const holding = new Set<Run>();
  let counted = { orders: 0, admitted: 0, feasible: 0, refusedFeasible: 0, shedByCap: 0 };
  let admittedMissed = 0;
  let oracleMismatches = 0;

  /** oracleFinish is when an order arriving now would finish if admitted; Infinity if late. */
  const oracleFinish = (order: SimOrder): number => {
    const free: number[] = [];
    for (const run of holding)
      free.push(Math.min(run.grantedAt + run.order.holdMs, run.deadlineAt));
    while (free.length < poolSize) free.push(now);
    const earliest = (): number => {
      let best = 0;
      for (let i = 1; i < free.length; i++)
        if ((free[i] as number) < (free[best] as number)) best = i;
      return best;
    };
    for (const run of waiting) {
      if (run.grantedAt >= 0 || run.cutOff) continue;
      const slot = earliest();
      const start = Math.max(run.reachAt, free[slot] as number);
      // Still waiting at its deadline: it leaves the queue without holding a courier.
      if (start >= run.deadlineAt) continue;
      free[slot] = start + Math.min(run.order.holdMs, run.deadlineAt - start);
    }
    const reachAt = now + reachMs;
    const start = Math.max(reachAt, free[earliest()] as number);
    const done = Math.max(reachAt + order.otherMs, start + order.holdMs) + finishMs;
    return done <= now + deadlineMs ? done : Infinity;
  };

  const settleSteps = (run: Run): void => {
    if (run.settled) return;
    run.settled = true;
    run.place.stepsSettled();
    events.push(now + finishMs, finish, () => {
      run.finishedAt = now;
      run.place.release();
      runOf.delete(run.cancel);
      if (run.order.warmup === true) return;
      const late = run.cutOff || run.finishedAt > run.deadlineAt;
      if (late) admittedMissed++;
      if (late ? run.oracleFinish !== Infinity : run.oracleFinish !== run.finishedAt) {
        oracleMismatches++;
      }
    });
  };

  const admit = (order: SimOrder): void => {
    const warm = order.warmup === true;
    const oracle = oracleFinish(order);
    const shedBefore = admission.refusedStandingQueue;
    const place = admission.admit(deadlineMs);
    if (!warm) {
      counted.orders++;
      const shed = admission.refusedStandingQueue > shedBefore;
      if (shed) counted.shedByCap++;
      else if (oracle !== Infinity) counted.feasible++;
      if (!place.admitted && !shed && oracle !== Infinity) counted.refusedFeasible++;
    }
    if (!place.admitted) return;
    if (!warm) counted.admitted++;
    const run: Run = {
      order,
      place,
      cancel: new CancelSource(),
      reachAt: now + reachMs,
      deadlineAt: now + deadlineMs,
      oracleFinish: oracle,
      grantedAt: Number.NaN,
      permit: undefined,
      courierDone: false,
      otherDone: false,
      settled: false,
      finishedAt: Number.NaN,
      cutOff: false,
    };
    runOf.set(run.cancel, run);
    waiting.push(run);
    events.push(run.deadlineAt, deadline, () => {
      if (run.settled) return;
      run.cutOff = true;
      run.cancel.abort(new Error('deadline'));
      if (run.permit !== undefined && !run.courierDone) {
        run.courierDone = true;
        holding.delete(run);
        run.permit.release();
      }
      settleSteps(run);
    });
    events.push(run.reachAt, reach, () => {
      if (run.cutOff) return;
      events.push(now + order.otherMs, otherDone, () => {
        run.otherDone = true;
        if (run.courierDone && !run.cutOff) settleSteps(run);
      });
      pool.acquire(run.cancel).then(
        (permit) => {
          run.grantedAt = now;
          run.permit = permit;
          holding.add(run);
          events.push(now + order.holdMs, courierDone, () => {
            if (run.courierDone) return;
            run.courierDone = true;
            holding.delete(run);
            permit.release();
            if (run.otherDone) settleSteps(run);
          });
        },
        () => undefined,
      );
    });
  };

  for (const order of pattern.orders)
    events.push(order.at, arrival, () => {
      admit(order);
    });
  let compactAt = 1024;
  for (;;) {
    const event = events.pop();
    if (event === undefined) break;
    now = event.at;
    event.run();
    if (event.kind !== arrival) await settle();
    if (waiting.length > compactAt) {
      waiting = waiting.filter((run) => !(run.grantedAt >= 0) && !run.cutOff);
      compactAt = Math.max(1024, 2 * waiting.length);
    }
  }
  await settle();
  const result = {
    pattern: pattern.name,
    ...counted,
    admittedMissed,
    oracleMismatches,
    marginMs: admission.marginMs(deadlineMs),
  };
  counted = { orders: 0, admitted: 0, feasible: 0, refusedFeasible: 0, shedByCap: 0 };
  if (admission.inflight !== 0 || pool.inUse !== 0 || pool.waiting !== 0) {
    throw new Error(`${pattern.name}: left behind ${admission.inflight} orders in flight`);
  }
  return result;
}

/** Times are kept on a grid of 1/64 ms, exact in binary floating point. */
const grid = (ms: number): number => Math.round(ms * 64) / 64;

/** Shape is the part of a pattern its arrivals do not set. */
export type Shape = Omit<Pattern, 'name' | 'orders' | 'bounded'>;

/** The service as `npm start` runs it: 2 s deadline, the default cap, store writes of 2 ms. */
export const defaultShape: Shape = {
  poolSize: defaultConfig.courierPoolSize,
  deadlineMs: defaultConfig.requestTimeoutMs,
  reachMs: 2,
  finishMs: 2,
  overloadWaitMs: defaultConfig.overloadWaitMs,
  overloadWindowMs: defaultConfig.overloadWindowMs,
};

/** warmUp is `count` orders served one after another, the last done by the time returned. */
export function warmUp(
  count: number,
  step: Omit<SimOrder, 'at'>,
  shape: Shape,
): { orders: SimOrder[]; until: number } {
  const spacing = shape.reachMs + Math.max(step.holdMs, step.otherMs) + shape.finishMs + 1;
  const orders = Array.from({ length: count }, (_, i) => ({
    ...step,
    at: i * spacing,
    warmup: true,
  }));
  return { orders, until: count * spacing };
}

/** burst is `count` orders arriving at `at`. */
export function burst(
  count: number,
  at: number,
  step: (i: number) => Omit<SimOrder, 'at'>,
): SimOrder[] {
  return Array.from({ length: count }, (_, i) => ({ ...step(i), at }));
}

/**
 * rate is orders arriving evenly at a rate going from `fromPerSecond` to `toPerSecond` over
 * `seconds`, from `at` on.
 */
export function rate(
  fromPerSecond: number,
  toPerSecond: number,
  seconds: number,
  at: number,
  step: (i: number) => Omit<SimOrder, 'at'>,
): SimOrder[] {
  const orders: SimOrder[] = [];
  // The n-th order arrives when the rate's integral reaches n.
  const slope = (toPerSecond - fromPerSecond) / seconds;
  const total = ((fromPerSecond + toPerSecond) / 2) * seconds;
  for (let n = 1; n <= total; n++) {
    const t =
      slope === 0
        ? n / fromPerSecond
        : (-fromPerSecond + Math.sqrt(fromPerSecond ** 2 + 2 * slope * n)) / slope;
    orders.push({ ...step(orders.length), at: grid(at + t * 1000) });
  }
  return orders;
}

/** The default simulated steps: payment 150 ms and vendor 200 ms beside the courier. */
const defaultOtherMs = 200;

/** patterns are the arrival patterns of the benchmark's table. */
export function patterns(quick: boolean): Pattern[] {
  const scale = quick ? 0.4 : 1;
  const of = (name: string, shape: Shape, orders: SimOrder[], bounded = true): Pattern => ({
    name,
    ...shape,
    orders: [...orders].sort((a, b) => a.at - b.at),
    bounded,
  });
  const list: Pattern[] = [];
  {
    const shape = { ...defaultShape, poolSize: 1 };
    const step = { holdMs: 150, otherMs: defaultOtherMs };
    const warm = warmUp(3, step, shape);
    list.push(
      of('burst of 40, pool 1, couriers of 150 ms (the issue)', shape, [
        ...warm.orders,
        ...burst(40, warm.until, () => step),
      ]),
    );
  }
  {
    const step = { holdMs: 100, otherMs: defaultOtherMs };
    const warm = warmUp(3, step, defaultShape);
    list.push(
      of('burst of 50, pool 5, couriers of 100 ms', defaultShape, [
        ...warm.orders,
        ...burst(50, warm.until, () => step),
      ]),
    );
  }
  {
    const shape = { ...defaultShape, poolSize: 2 };
    const step = { holdMs: 100, otherMs: defaultOtherMs };
    const warm = warmUp(3, step, shape);
    list.push(
      of('burst of 400, pool 2, couriers of 100 ms', shape, [
        ...warm.orders,
        ...burst(400, warm.until, () => step),
      ]),
    );
  }
  {
    const step = { holdMs: 100, otherMs: defaultOtherMs };
    const warm = warmUp(3, step, defaultShape);
    const bursts = Math.round(10 * scale);
    list.push(
      of(`${bursts} bursts of 80, one every 1.5 s, pool 5, couriers of 100 ms`, defaultShape, [
        ...warm.orders,
        ...Array.from({ length: bursts }, (_, b) =>
          burst(80, warm.until + b * 1500, () => step),
        ).flat(),
      ]),
    );
  }
  {
    const step = { holdMs: 50, otherMs: 20 };
    const warm = warmUp(3, step, defaultShape);
    const seconds = 10 * scale;
    list.push(
      of(
        `ramp 0 → 300/s over ${seconds} s (3× capacity), pool 5, couriers of 50 ms`,
        defaultShape,
        [...warm.orders, ...rate(1, 300, seconds, warm.until, () => step)],
      ),
    );
  }
  {
    const step = { holdMs: 10, otherMs: 1 };
    const warm = warmUp(3, step, defaultShape);
    const seconds = 5 * scale;
    list.push(
      of(
        `steady 5,000/s for ${seconds} s (10× capacity), pool 5, couriers of 10 ms`,
        defaultShape,
        [...warm.orders, ...rate(5000, 5000, seconds, warm.until, () => step)],
      ),
    );
  }
  {
    const random = seededRandom(20261204);
    const holds = [10, 100, 300];
    const step = () => ({ holdMs: holds[Math.floor(random() * holds.length)] ?? 100, otherMs: 20 });
    const warm = warmUp(3, { holdMs: 100, otherMs: 20 }, defaultShape);
    const seconds = 20 * scale;
    // Capacity: 5 couriers / 136.7 ms mean hold = 36.6 orders/s.
    list.push(
      of(
        `mixed couriers 10/100/300 ms, 55/s (1.5× capacity) for ${seconds} s, pool 5`,
        defaultShape,
        [...warm.orders, ...rate(55, 55, seconds, warm.until, step)],
        false,
      ),
    );
  }
  {
    const step = { holdMs: 1, otherMs: 1 };
    list.push(
      of(
        'cold: burst of 100, pool 5, steps of 1 ms (the original stress test)',
        defaultShape,
        burst(100, 0, () => step),
        false,
      ),
    );
  }
  {
    const shape = { ...defaultShape, poolSize: 1 };
    list.push(
      of(
        'cold: burst of 40, pool 1, couriers of 150 ms, no warm-up',
        shape,
        burst(40, 0, () => ({ holdMs: 150, otherMs: defaultOtherMs })),
        false,
      ),
    );
  }
  return list;
}

const percent = (part: number, whole: number): number => (whole === 0 ? 0 : (100 * part) / whole);

/**
 * admissionOracleBenchmark is the benchmark section `admission`: one row per pattern, how
 * many feasible orders admission refused and how many admitted orders missed their deadline.
 */
export async function admissionOracleBenchmark(options: { quick: boolean }): Promise<Row[]> {
  const rows: Row[] = [];
  for (const pattern of patterns(options.quick)) {
    const judged = await judge(pattern);
    const before = await judge(pattern, 'previous');
    const refused = percent(judged.refusedFeasible, judged.feasible);
    const missed = percent(judged.admittedMissed, judged.admitted);
    const rates = (j: Judgement): string =>
      `refused feasible ${percent(j.refusedFeasible, j.feasible).toFixed(2)}% · ` +
      `admitted missed ${percent(j.admittedMissed, j.admitted).toFixed(2)}%`;
    const counts = (j: Judgement): string =>
      `${j.feasible.toLocaleString('en-US')} feasible of ${j.orders.toLocaleString('en-US')}, ` +
      `admitted ${j.admitted.toLocaleString('en-US')}, refused feasible ${j.refusedFeasible}, ` +
      `missed ${j.admittedMissed}, shed by the cap ${j.shedByCap.toLocaleString('en-US')}`;
    rows.push(
      row({
        section: 'admission',
        scenario: pattern.name,
        value: refused,
        unit: '%',
        figure: rates(judged),
        baseline: `previous rule: ${rates(before)}`,
        compare:
          `${counts(judged)} · margin at 2 s ${judged.marginMs.toFixed(1)} ms · ` +
          `oracle mismatches ${judged.oracleMismatches} · previous rule: ${counts(before)}`,
        target: pattern.bounded === true ? '≤ 1% · ≤ 0.1%' : '',
        met: pattern.bounded === true ? refused <= 1 && missed <= 0.1 : undefined,
      }),
    );
  }
  return rows;
}
