import { errorKinds, type ErrorKind } from '../order/errors.js';
import {
  latencyBin,
  latencyBinCount,
  latencySummary,
  type LatencyHistogram,
} from './latency-histogram.js';

/** How far back the series go, in seconds: 5 minutes. */
export const seriesSeconds = 300;
/** The width of one point of the series, in seconds. */
export const pointSeconds = 5;
/** The width of the window of {@link OrderSeries.window} the dashboard reads, in seconds. */
export const windowSeconds = 60;

// One second's bucket is a row of counters: orders by outcome kind (`ok`, then each error
// kind), refusals by reason, then the latency histogram of the orders settled that second.
const okColumn = 0;
const kindColumns = Object.fromEntries(errorKinds.map((kind, i) => [kind, 1 + i])) as Record<
  ErrorKind,
  number
>;
const timeoutColumn = kindColumns.timeout;
const overloadedColumn = 1 + errorKinds.length;
const shuttingDownColumn = overloadedColumn + 1;
const latencyColumn = shuttingDownColumn + 1;
const rowWidth = latencyColumn + latencyBinCount;
/** Seconds kept: the series' span, the point being filled and the second being counted. */
const ringSeconds = seriesSeconds + pointSeconds + 1;

/** SeriesPoint is one point of the series: what settled or was refused in its seconds. */
export interface SeriesPoint {
  /** Orders that succeeded. */
  ok: number;
  /** Orders that failed, but for a timeout. */
  errors: number;
  /** Orders that failed with `timeout`. */
  timeouts: number;
  /** Orders refused before any step ran (`overloaded` and `shutting_down`). */
  refused: number;
  /** Latency percentiles of the orders settled (0 when none did), in ms. */
  p50_ms: number;
  p99_ms: number;
  latency: LatencyHistogram;
}

/**
 * SeriesView is the series over the last {@link seriesSeconds}: points of
 * {@link pointSeconds} aligned on multiples of that width since the epoch, oldest first.
 * Point `i` covers [`from` + i·`step_ms`, `from` + (i+1)·`step_ms`), cut at `to`: only whole
 * seconds are counted, so the last point may be shorter than the others.
 */
export interface SeriesView {
  step_ms: number;
  /** Start of the first point, ms since the epoch. */
  from: number;
  /** End of the last point (exclusive; the start of the second being counted). */
  to: number;
  points: SeriesPoint[];
}

/** WindowView sums the orders settled and refused over one window of whole seconds. */
export interface WindowView {
  seconds: number;
  /** Orders settled by outcome kind (`ok` for a success); kinds never seen are left out. */
  by_kind: Record<string, number>;
  refused: { overloaded: number; shutting_down: number };
  p50_ms: number;
  p99_ms: number;
  latency: LatencyHistogram;
}

/**
 * OrderSeries counts the orders settled and refused per second of the wall clock (seconds
 * since the epoch), by outcome kind, with a histogram of the settled orders' latencies, over
 * the last {@link seriesSeconds}. It keeps one row of counters per second in a ring of typed
 * arrays allocated once: counting an order is two additions in place, and a second's row is
 * cleared when the ring comes back to it, so memory is fixed whatever the load. Reads sum the
 * rows they cover; percentiles are computed from the summed histograms.
 */
export class OrderSeries {
  readonly #counts = new Uint32Array(ringSeconds * rowWidth);
  /** Which second each row of the ring holds; -1 while it holds none. */
  readonly #secondOf = new Float64Array(ringSeconds).fill(-1);

  /**
   * recordOrder counts an order settled during `second` (seconds since the epoch) with
   * `kind` (undefined for a success) after `latencyMs`. An order older than the ring is
   * not counted.
   */
  recordOrder(second: number, kind: ErrorKind | undefined, latencyMs: number): void {
    const row = this.#row(second);
    if (row < 0) return;
    const column = kind === undefined ? okColumn : kindColumns[kind];
    this.#add(row + column, 1);
    this.#add(row + latencyColumn + latencyBin(latencyMs), 1);
  }

  /** recordRefusals counts refusals made during `second`, by reason. */
  recordRefusals(second: number, overloaded: number, shuttingDown: number): void {
    const row = this.#row(second);
    if (row < 0) return;
    this.#add(row + overloadedColumn, overloaded);
    this.#add(row + shuttingDownColumn, shuttingDown);
  }

  /**
   * series is the view of the last {@link seriesSeconds} before `endSecond` (exclusive), in
   * points of {@link pointSeconds} (see {@link SeriesView}).
   */
  series(endSecond: number): SeriesView {
    const lastStart = Math.floor((endSecond - 1) / pointSeconds) * pointSeconds;
    const count = seriesSeconds / pointSeconds;
    const firstStart = lastStart - (count - 1) * pointSeconds;
    const points: SeriesPoint[] = [];
    const sums = new Float64Array(rowWidth);
    for (let start = firstStart; start <= lastStart; start += pointSeconds) {
      sums.fill(0);
      this.#sumInto(sums, start, Math.min(start + pointSeconds, endSecond));
      points.push(pointOf(sums));
    }
    return { step_ms: pointSeconds * 1000, from: firstStart * 1000, to: endSecond * 1000, points };
  }

  /** window sums the `seconds` seconds before `endSecond` (exclusive). */
  window(endSecond: number, seconds: number): WindowView {
    const sums = new Float64Array(rowWidth);
    this.#sumInto(sums, endSecond - seconds, endSecond);
    const byKind: Record<string, number> = {};
    if ((sums[okColumn] ?? 0) > 0) byKind['ok'] = sums[okColumn] ?? 0;
    for (const kind of errorKinds) {
      const count = sums[kindColumns[kind]] ?? 0;
      if (count > 0) byKind[kind] = count;
    }
    const bins = sums.subarray(latencyColumn);
    return {
      seconds,
      by_kind: byKind,
      refused: {
        overloaded: sums[overloadedColumn] ?? 0,
        shutting_down: sums[shuttingDownColumn] ?? 0,
      },
      ...latencySummary(bins),
    };
  }

  /** ordersIn counts the orders settled during the seconds [from, to). */
  ordersIn(from: number, to: number): number {
    return this.#countIn(from, to, okColumn, overloadedColumn);
  }

  /** refusalsIn counts the orders refused, for any reason, during the seconds [from, to). */
  refusalsIn(from: number, to: number): number {
    return this.#countIn(from, to, overloadedColumn, latencyColumn);
  }

  /** #countIn sums the columns [first, end) of the seconds [from, to). */
  #countIn(from: number, to: number, first: number, end: number): number {
    let count = 0;
    for (let second = Math.max(from, to - ringSeconds); second < to; second++) {
      const slot = second % ringSeconds;
      if (this.#secondOf[slot] !== second) continue;
      const row = slot * rowWidth;
      for (let column = first; column < end; column++) count += this.#counts[row + column] ?? 0;
    }
    return count;
  }

  /** #sumInto adds the rows of the seconds [from, to) that the ring still holds to `sums`. */
  #sumInto(sums: Float64Array, from: number, to: number): void {
    for (let second = Math.max(from, to - ringSeconds); second < to; second++) {
      const slot = second % ringSeconds;
      if (this.#secondOf[slot] !== second) continue;
      const row = slot * rowWidth;
      for (let column = 0; column < rowWidth; column++) {
        sums[column] = (sums[column] ?? 0) + (this.#counts[row + column] ?? 0);
      }
    }
  }

  /**
   * #row is the offset of the row of `second`, cleared if it held an older second; -1 if
   * the ring has moved past `second`.
   */
  #row(second: number): number {
    const slot = second % ringSeconds;
    const held = this.#secondOf[slot] ?? -1;
    const row = slot * rowWidth;
    if (held !== second) {
      if (held > second) return -1;
      this.#secondOf[slot] = second;
      this.#counts.fill(0, row, row + rowWidth);
    }
    return row;
  }

  #add(index: number, count: number): void {
    this.#counts[index] = (this.#counts[index] ?? 0) + count;
  }
}

function pointOf(sums: Float64Array): SeriesPoint {
  let errors = 0;
  for (let column = okColumn + 1; column < overloadedColumn; column++) {
    if (column !== timeoutColumn) errors += sums[column] ?? 0;
  }
  const bins = sums.subarray(latencyColumn);
  return {
    ok: sums[okColumn] ?? 0,
    errors,
    timeouts: sums[timeoutColumn] ?? 0,
    refused: (sums[overloadedColumn] ?? 0) + (sums[shuttingDownColumn] ?? 0),
    ...latencySummary(bins),
  };
}
