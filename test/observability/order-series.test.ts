import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addInto,
  binLowerMs,
  latencyBin,
  latencyBinCount,
  percentileMs,
  trimmed,
} from '../../src/observability/latency-histogram.js';
import { OrderSeries, pointSeconds, seriesSeconds } from '../../src/observability/order-series.js';
import type { OrderRecord } from '../../src/observability/order-record.js';
import { RecentOrders } from '../../src/observability/recent-orders.js';
import type { ErrorKind } from '../../src/order/errors.js';

describe('latency histogram', () => {
  it.each([
    { ms: 0, want: 0 },
    { ms: 0.999, want: 0 },
    { ms: Number.NaN, want: 0 },
    { ms: 1, want: 1 },
    { ms: 2, want: 5 },
    { ms: 1024, want: 41 },
    { ms: 65_535, want: 64 },
    { ms: 65_536, want: 65 },
    { ms: 1e9, want: 65 },
  ])('latencyBin($ms) is $want', ({ ms, want }) => {
    expect(latencyBin(ms)).toBe(want);
  });

  it('puts every latency in the bin whose edges hold it', () => {
    fc.assert(
      fc.property(fc.double({ min: 1, max: 65_000, noNaN: true }), (ms) => {
        const bin = latencyBin(ms);
        // The edges are powers of 2^(1/4): allow their rounding.
        expect(binLowerMs(bin)).toBeLessThanOrEqual(ms * (1 + 1e-12));
        expect(binLowerMs(bin + 1)).toBeGreaterThan(ms * (1 - 1e-12));
      }),
    );
  });

  it('answers percentiles within one bin (19 %) of the exact ones', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 1, max: 60_000, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.constantFrom(0.5, 0.9, 0.99),
        (latencies, q) => {
          const bins = new Array<number>(latencyBinCount).fill(0);
          for (const ms of latencies) bins[latencyBin(ms)]! += 1;
          const sorted = [...latencies].sort((a, b) => a - b);
          const exact = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
          const got = percentileMs(bins, q);
          expect(got, `p${q * 100} of ${sorted.length}`).toBeGreaterThanOrEqual(exact / 1.19 - 0.1);
          expect(got, `p${q * 100} of ${sorted.length}`).toBeLessThanOrEqual(exact * 1.19 + 0.1);
        },
      ),
    );
  });

  it('interpolates within a bin by rank, and answers 0 when empty', () => {
    const bins = new Array<number>(latencyBinCount).fill(0);
    expect(percentileMs(bins, 0.5)).toBe(0);
    // Four orders in bin 5, [2, 2.38) ms: the median is the second of four.
    bins[5] = 4;
    expect(percentileMs(bins, 0.5)).toBe(2.2);
    expect(percentileMs(bins, 1)).toBe(2.4);
    // The last bin is unbounded: its lower edge.
    bins[65] = 1000;
    expect(percentileMs(bins, 0.99)).toBe(65_536);
  });

  it('trims empty bins at both ends, and adds trimmed histograms back bin by bin', () => {
    const bins = new Array<number>(latencyBinCount).fill(0);
    bins[3] = 2;
    bins[6] = 1;
    const histogram = trimmed(bins);
    expect(histogram).toEqual({ offset: 3, counts: [2, 0, 0, 1] });
    expect(trimmed(new Array<number>(latencyBinCount).fill(0))).toEqual({ offset: 0, counts: [] });
    const sum = new Float64Array(latencyBinCount);
    addInto(sum, histogram);
    addInto(sum, histogram);
    expect([...sum]).toEqual(bins.map((count) => count * 2));
  });

  it('refuses to add a histogram with bins it does not know', () => {
    const sum = new Float64Array(latencyBinCount);
    expect(() => {
      addInto(sum, { offset: 65, counts: [1, 1] });
    }).toThrow(RangeError);
    expect(() => {
      addInto(sum, { offset: -1, counts: [1] });
    }).toThrow(RangeError);
    expect(() => {
      addInto(sum, { offset: 0, counts: [1.5] });
    }).toThrow(RangeError);
    expect(
      [...sum].every((count) => count === 0),
      'left unchanged before the bad bin',
    ).toBe(true);
  });
});

describe('OrderSeries', () => {
  const count = seriesSeconds / pointSeconds;

  it('sums whole seconds into points of 5 s aligned on the epoch, the last one cut short', () => {
    const series = new OrderSeries();
    series.recordOrder(1000, undefined, 10);
    series.recordOrder(1001, 'payment_declined', 20);
    series.recordOrder(1004, 'timeout', 2000);
    series.recordRefusals(1004, 3, 1);
    series.recordOrder(1005, undefined, 10);
    series.recordOrder(1007, undefined, 10);
    // Second 1007 is being counted: the series stops before it.
    const view = series.series(1007);
    expect(view.step_ms).toBe(5000);
    expect(view.to).toBe(1_007_000);
    expect(view.points).toHaveLength(count);
    expect(view.from).toBe(1_005_000 - (count - 1) * 5000);
    const [before, last] = view.points.slice(-2);
    expect(before).toMatchObject({ ok: 1, errors: 1, timeouts: 1, refused: 4 });
    expect(last, 'seconds 1005 and 1006 only').toMatchObject({ ok: 1, errors: 0, timeouts: 0 });
    expect(view.points.slice(0, -2).every((point) => point.ok + point.refused === 0)).toBe(true);
  });

  it('forgets a second once the ring comes back to it', () => {
    const series = new OrderSeries();
    series.recordOrder(10, undefined, 5);
    expect(series.ordersIn(0, 11)).toBe(1);
    // The same row of the ring, a ring later: the old second is cleared, not added to.
    const later = 10 + seriesSeconds + pointSeconds + 1;
    series.recordOrder(later, undefined, 5);
    expect(series.ordersIn(0, 11), 'the old second').toBe(0);
    expect(series.ordersIn(later, later + 1), 'the new one').toBe(1);
    series.recordOrder(10, undefined, 5);
    expect(series.ordersIn(later, later + 1), 'an order older than the ring is dropped').toBe(1);
  });

  it('sums a window by kind, with refusals by reason and the percentiles of its orders', () => {
    const series = new OrderSeries();
    for (let i = 0; i < 98; i++) series.recordOrder(100, undefined, 100);
    series.recordOrder(101, 'timeout', 2000);
    series.recordOrder(101, 'vendor_unavailable', 200);
    series.recordRefusals(102, 7, 0);
    const window = series.window(103, 60);
    expect(window.by_kind).toEqual({ ok: 98, timeout: 1, vendor_unavailable: 1 });
    expect(window.refused).toEqual({ overloaded: 7, shutting_down: 0 });
    expect(window.p50_ms).toBeGreaterThanOrEqual(100 / 1.19);
    expect(window.p50_ms).toBeLessThanOrEqual(100 * 1.19);
    expect(window.p99_ms).toBeGreaterThanOrEqual(200 / 1.19);
    expect(window.p99_ms).toBeLessThanOrEqual(200 * 1.19);
    expect(series.window(163, 60).by_kind, 'a minute later').toEqual({});
  });
});

describe('RecentOrders', () => {
  const record = (orderId: string, kind?: ErrorKind, settledAt = 1): OrderRecord => ({
    orderId,
    startedAt: settledAt - 1,
    durationMs: 1,
    outcome:
      kind === undefined
        ? { status: 'ok', steps: [] }
        : { status: 'error', steps: [], error: { kind, message: 'failed' } },
    canceledAtMs: undefined,
    courierWait: undefined,
  });

  it('keeps the last failures after successes have pushed them out of the last orders', () => {
    const recent = new RecentOrders(3, 0);
    recent.record(record('f0', 'timeout'));
    recent.record(record('f1', 'payment_declined'));
    for (let i = 0; i < 5; i++) recent.record(record(`ok${i}`));
    expect(recent.timeline().map((row) => row.order_id)).toEqual(['ok4', 'ok3', 'ok2', 'f1', 'f0']);
    // A failure among the last three is in both rings, and shown once.
    recent.record(record('f2', 'no_courier'));
    recent.record(record('f3', 'no_courier'));
    expect(recent.timeline().map((row) => row.order_id)).toEqual(['f3', 'f2', 'ok4', 'f1']);
    expect(recent.timeline().map((row) => row.seq)).toEqual([8, 7, 6, 1]);
  });

  it('counts refusals from the running totals, in the second they are seen', () => {
    let totals = { overloaded: 5, shutting_down: 0 };
    const recent = new RecentOrders(3, 0);
    recent.watchRefusals(() => totals);
    try {
      totals = { overloaded: 9, shutting_down: 2 };
      expect(recent.lastMinute(10_500).refused, 'the 5 before watching are not counted').toEqual({
        overloaded: 4,
        shutting_down: 2,
      });
      expect(recent.lastMinute(10_600).refused, 'read twice, counted once').toEqual({
        overloaded: 4,
        shutting_down: 2,
      });
      totals = { overloaded: 19, shutting_down: 2 };
      // Seen during second 11, the 10 new ones are not in seconds 6-10 yet.
      expect(recent.refusedPerSecond(11_000), 'seconds 6-10').toBe(6 / 5);
      expect(recent.series(12_000).points.at(-1)?.refused, 'second 10, then 11').toBe(16);
    } finally {
      recent.close();
    }
  });

  it('records an order as its wall-clock second, from the time origin', () => {
    const recent = new RecentOrders(3, 1_000_000_000_500);
    // Settled at 500 ms on the records' clock: 1,000,000,001.0 s on the wall clock.
    recent.record(record('o', undefined, 500));
    const view = recent.series(1500);
    expect(view.to).toBe(1_000_000_002_000);
    expect(view.points.at(-1)).toMatchObject({ ok: 1 });
  });
});
