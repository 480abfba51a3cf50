import { roundMs } from './order-log.js';
import { courierStepName, type OrderRecord } from './order-record.js';

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

/** The number of recent orders the dashboard keeps unless told otherwise. */
export const defaultRecentOrders = 30;

/**
 * RecentOrders keeps the last `capacity` settled orders for the dashboard's timeline, in a
 * ring buffer: memory is bounded whatever the load. It also counts every order by outcome
 * kind since start. A record is stored as given and turned into rows only when read, so
 * recording costs an array write.
 */
export class RecentOrders {
  readonly capacity: number;
  readonly #ring: (OrderRecord | undefined)[];
  #seq = 0;
  readonly #byKind = new Map<string, number>();
  readonly #timeOrigin: number;
  /** Orders settled per whole second of the records' clock, in a ring of a few seconds. */
  readonly #perSecond = new Array<number>(rateWindowSeconds + 2).fill(0);
  readonly #secondOf = new Array<number>(rateWindowSeconds + 2).fill(-1);

  /** The capacity must be a positive safe integer; anything else throws a RangeError. */
  constructor(capacity = defaultRecentOrders, timeOrigin = performance.timeOrigin) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`RecentOrders capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#ring = new Array<OrderRecord | undefined>(capacity).fill(undefined);
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
    const current = Math.floor(nowMs / 1000);
    let count = 0;
    for (let second = current - rateWindowSeconds; second < current; second++) {
      const slot = second % this.#perSecond.length;
      if (this.#secondOf[slot] === second) count += this.#perSecond[slot] ?? 0;
    }
    return count / rateWindowSeconds;
  }

  record(order: OrderRecord): void {
    const second = Math.floor((order.startedAt + order.durationMs) / 1000);
    const slot = second % this.#perSecond.length;
    if (this.#secondOf[slot] !== second) {
      this.#secondOf[slot] = second;
      this.#perSecond[slot] = 0;
    }
    this.#perSecond[slot] = (this.#perSecond[slot] ?? 0) + 1;
    this.#ring[this.#seq % this.capacity] = order;
    this.#seq++;
    const kind = order.outcome.error?.kind ?? 'ok';
    this.#byKind.set(kind, (this.#byKind.get(kind) ?? 0) + 1);
  }

  /** byKind counts every recorded order by kind (`ok` for a success). */
  byKind(): Record<string, number> {
    return Object.fromEntries(this.#byKind);
  }

  /** timeline lists the kept orders, newest first, as rows for the dashboard. */
  timeline(): TimelineOrder[] {
    const rows: TimelineOrder[] = [];
    const oldest = Math.max(0, this.#seq - this.capacity);
    for (let seq = this.#seq - 1; seq >= oldest; seq--) {
      const order = this.#ring[seq % this.capacity];
      if (order !== undefined) rows.push(this.#row(seq, order));
    }
    return rows;
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
