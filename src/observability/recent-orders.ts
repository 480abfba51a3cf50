import { roundMs } from './order-log.js';
import { courierStepName, type OrderRecord } from './order-record.js';
import { OrderSeries, windowSeconds, type SeriesView, type WindowView } from './order-series.js';

/** TimelineStep is one bar of a timeline row; times in milliseconds from the order's start. */
export interface TimelineStep {
  name: string;
  status: string;
  end_ms: number;
  detail?: string;
  /** When the step waited for a courier slot: from the start until it got one or gave up. */
  wait_ms?: number;
}

/** TimelineOrder is one row of the dashboard's timeline. */
export interface TimelineOrder {
  seq: number;
  order_id: string;
  /** Wall-clock start, milliseconds since the epoch. */
  started_at: number;
  duration_ms: number;
  status: 'ok' | 'error';
  kind?: string;
  canceled_at_ms?: number;
  steps: TimelineStep[];
}

/** The window of {@link RecentOrders.perSecond}, in whole seconds. */
export const rateWindowSeconds = 5;

/** The number of recent orders, and of recent failures, the dashboard keeps unless told otherwise. */
export const defaultRecentOrders = 30;

/** How often the refusals' totals are read while {@link RecentOrders.watchRefusals} runs, in ms. */
const refusalReadMs = 250;

/** The running totals of refusals by reason, as admission counts them. */
export type RefusalTotals = Readonly<Record<string, number>>;

/**
 * RecentOrders is what the dashboard shows of the orders themselves, in memory bounded
 * whatever the load:
 *
 * - the timeline: the last `capacity` settled orders and, apart, the last `capacity`
 *   failures, each in a ring buffer, so that a failure stays in view long after a flood of
 *   successes has pushed it out of the first ring;
 * - the series: orders settled per second of the wall clock by outcome kind, with their
 *   latency histogram, and refusals per second, over the last 5 minutes ({@link OrderSeries});
 * - counts by outcome kind since start.
 *
 * Recording an order is O(1) and allocates nothing: a record is stored as given (turned into
 * rows only when read) and counted in place. Refusals never reach it (they run no step): it
 * reads admission's running totals every {@link refusalReadMs} and at each read, and counts
 * what is new in the second it sees it (see {@link watchRefusals}).
 */
export class RecentOrders {
  readonly capacity: number;
  readonly #ring: (OrderRecord | undefined)[];
  #seq = 0;
  readonly #failures: (OrderRecord | undefined)[];
  /** The sequence number of each failure in {@link #failures}. */
  readonly #failureSeqs: Float64Array;
  #failureCount = 0;
  readonly #byKind = new Map<string, number>();
  readonly #timeOrigin: number;
  readonly #series = new OrderSeries();
  #refusalTotals: (() => RefusalTotals) | undefined;
  #refusalsSeen = { overloaded: 0, shutting_down: 0 };
  /** When a reading last found new `overloaded` refusals, on the records' clock. */
  #overloadedSeenAt = -Infinity;
  #refusalTimer: NodeJS.Timeout | undefined;

  /**
   * `capacity` (of each ring) must be a positive safe integer; anything else throws a
   * RangeError. `timeOrigin` is the wall-clock time (ms since the epoch) at which the records'
   * clock read 0: `performance.timeOrigin` for `performance.now`.
   */
  constructor(capacity = defaultRecentOrders, timeOrigin = performance.timeOrigin) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`RecentOrders capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#ring = new Array<OrderRecord | undefined>(capacity).fill(undefined);
    this.#failures = new Array<OrderRecord | undefined>(capacity).fill(undefined);
    this.#failureSeqs = new Float64Array(capacity);
    this.#timeOrigin = timeOrigin;
  }

  /** total is the number of orders ever recorded. */
  get total(): number {
    return this.#seq;
  }

  /**
   * perSecond is the rate of orders settled over the last {@link rateWindowSeconds} whole
   * seconds before `nowMs` (the clock of the records), counted by the server as they settle.
   */
  perSecond(nowMs: number = performance.now()): number {
    const current = this.#secondAt(nowMs);
    return this.#series.ordersIn(current - rateWindowSeconds, current) / rateWindowSeconds;
  }

  /**
   * refusedPerSecond is the rate of orders refused (for any reason) over the last
   * {@link rateWindowSeconds} whole seconds before `nowMs`, as {@link perSecond} counts.
   */
  refusedPerSecond(nowMs: number = performance.now()): number {
    this.#countRefusals(nowMs);
    const current = this.#secondAt(nowMs);
    return this.#series.refusalsIn(current - rateWindowSeconds, current) / rateWindowSeconds;
  }

  /**
   * refusedOverloadedWithin tells whether an order was refused as `overloaded` within
   * `windowMs` before `nowMs`: whether a reading of the refusals (see {@link watchRefusals}),
   * this one included, found new ones then. Readings are {@link refusalReadMs} apart.
   */
  refusedOverloadedWithin(windowMs: number, nowMs: number = performance.now()): boolean {
    this.#countRefusals(nowMs);
    return nowMs - this.#overloadedSeenAt < windowMs;
  }

  /** record keeps `order` in the timeline and counts it. O(1); it allocates nothing. */
  record(order: OrderRecord): void {
    const kind = order.outcome.error?.kind;
    const second = this.#secondAt(order.startedAt + order.durationMs);
    this.#series.recordOrder(second, kind, order.durationMs);
    const seq = this.#seq++;
    this.#ring[seq % this.capacity] = order;
    if (kind !== undefined) {
      const slot = this.#failureCount++ % this.capacity;
      this.#failures[slot] = order;
      this.#failureSeqs[slot] = seq;
    }
    const key = kind ?? 'ok';
    this.#byKind.set(key, (this.#byKind.get(key) ?? 0) + 1);
  }

  /**
   * watchRefusals has the refusals counted from `totals`, admission's running totals by
   * reason (`overloaded`, `shutting_down`): read every {@link refusalReadMs} (on a timer
   * that does not keep the process alive) and before each read of the series, what is new
   * since the last reading counted in the second it is seen in. Refusals made before the
   * call are not counted. {@link close} stops the timer. Calling it again replaces `totals`.
   */
  watchRefusals(totals: () => RefusalTotals): void {
    this.close();
    this.#refusalTotals = totals;
    const now = totals();
    this.#refusalsSeen = {
      overloaded: now['overloaded'] ?? 0,
      shutting_down: now['shutting_down'] ?? 0,
    };
    this.#refusalTimer = setInterval(() => {
      this.#countRefusals(performance.now());
    }, refusalReadMs);
    this.#refusalTimer.unref();
  }

  /** close stops reading the refusals (see {@link watchRefusals}). Closing twice does nothing. */
  close(): void {
    clearInterval(this.#refusalTimer);
    this.#refusalTimer = undefined;
  }

  /**
   * series is the last 5 minutes before the whole second of `nowMs` (the records' clock),
   * in points of 5 s on the wall clock (see {@link SeriesView}).
   */
  series(nowMs: number = performance.now()): SeriesView {
    this.#countRefusals(nowMs);
    return this.#series.series(this.#secondAt(nowMs));
  }

  /**
   * lastMinute sums the last {@link windowSeconds} seconds up to `nowMs` (the records'
   * clock), the second being counted included: orders by kind, refusals by reason, latency.
   */
  lastMinute(nowMs: number = performance.now()): WindowView {
    this.#countRefusals(nowMs);
    return this.#series.window(this.#secondAt(nowMs) + 1, windowSeconds);
  }

  /** byKind counts every recorded order by kind (`ok` for a success). */
  byKind(): Record<string, number> {
    return Object.fromEntries(this.#byKind);
  }

  /**
   * timeline lists the kept orders — the last `capacity` and the last `capacity` failures —
   * newest first (in the order they settled), each once, as rows for the dashboard.
   */
  timeline(): TimelineOrder[] {
    const rows: TimelineOrder[] = [];
    const { capacity } = this;
    const oldestRecent = Math.max(0, this.#seq - capacity);
    const oldestFailure = Math.max(0, this.#failureCount - capacity);
    let recent = this.#seq - 1;
    let failure = this.#failureCount - 1;
    while (recent >= oldestRecent || failure >= oldestFailure) {
      const failureSeq =
        failure >= oldestFailure ? (this.#failureSeqs[failure % capacity] ?? -1) : -1;
      const recentSeq = recent >= oldestRecent ? recent : -1;
      if (failureSeq > recentSeq) {
        const order = this.#failures[failure % capacity];
        if (order !== undefined) rows.push(this.#row(failureSeq, order));
        failure--;
        continue;
      }
      // A failure among the last orders is in both rings: shown once.
      if (failureSeq === recentSeq) failure--;
      const order = this.#ring[recent % capacity];
      if (order !== undefined) rows.push(this.#row(recent, order));
      recent--;
    }
    return rows;
  }

  /** #secondAt is the second since the epoch of `ms` on the records' clock. */
  #secondAt(ms: number): number {
    return Math.floor((this.#timeOrigin + ms) / 1000);
  }

  /** #countRefusals counts the refusals made since the last reading, in the second of `nowMs`. */
  #countRefusals(nowMs: number): void {
    if (this.#refusalTotals === undefined) return;
    const totals = this.#refusalTotals();
    const overloaded = totals['overloaded'] ?? 0;
    const shuttingDown = totals['shutting_down'] ?? 0;
    const seen = this.#refusalsSeen;
    if (overloaded === seen.overloaded && shuttingDown === seen.shutting_down) return;
    this.#series.recordRefusals(
      this.#secondAt(nowMs),
      overloaded - seen.overloaded,
      shuttingDown - seen.shutting_down,
    );
    if (overloaded > seen.overloaded) this.#overloadedSeenAt = nowMs;
    seen.overloaded = overloaded;
    seen.shutting_down = shuttingDown;
  }

  #row(seq: number, order: OrderRecord): TimelineOrder {
    const { outcome, courierWait } = order;
    const row: TimelineOrder = {
      seq,
      order_id: order.orderId,
      started_at: Math.round(this.#timeOrigin + order.startedAt),
      duration_ms: roundMs(order.durationMs),
      status: outcome.status,
      steps: outcome.steps.map((step) => {
        const bar: TimelineStep = {
          name: step.name,
          status: step.status,
          end_ms: roundMs(step.durationMs),
        };
        if (step.detail !== undefined) bar.detail = step.detail;
        if (step.name === courierStepName && courierWait !== undefined) {
          bar.wait_ms = roundMs(courierWait.settledAt - order.startedAt);
        }
        return bar;
      }),
    };
    if (outcome.error !== undefined) row.kind = outcome.error.kind;
    if (order.canceledAtMs !== undefined) row.canceled_at_ms = roundMs(order.canceledAtMs);
    return row;
  }
}
