import { TypeCompiler } from '@sinclair/typebox/compiler';
import { afterEach, describe, expect, it } from 'vitest';
import { DashboardState, mergeDashboardStates } from '../../src/http/dashboard/dashboard-state.js';
import {
  latencyBin,
  latencyBinCount,
  trimmed,
  type LatencyHistogram,
} from '../../src/observability/latency-histogram.js';
import type { RecordedOrder } from '../../src/http/schemas.js';
import { buildObservedApp, type ObservedTestApp } from './observed-app.js';

const built: ObservedTestApp[] = [];
afterEach(async () => {
  for (const test of built.splice(0)) await test.app.close();
});

const step = 5000;
/** A series end on a point boundary: the points start at multiples of 5 s. */
const to = 1_800_000_000_000;

/** histogramOf is the histogram of `count` orders of `ms` each. */
function histogramOf(ms: number, count: number) {
  const bins = new Array<number>(latencyBinCount).fill(0);
  bins[latencyBin(ms)] = count;
  return trimmed(bins);
}

const empty: LatencyHistogram = { offset: 0, counts: [] };
const emptyPoint = {
  ok: 0,
  errors: 0,
  timeouts: 0,
  refused: 0,
  p50_ms: 0,
  p99_ms: 0,
  latency: empty,
};

/** stateOf is a state of one process with nothing in it but `changes`. */
function stateOf(changes: Partial<DashboardState> = {}): DashboardState {
  return {
    now: to + 400,
    pool: { size: 5, in_use: 0, waiting: 0 },
    steps_in_flight: 0,
    orders_in_flight: 0,
    overloaded: false,
    orders_total: 0,
    orders_per_second: 0,
    refused_per_second: 0,
    by_kind: {},
    refused: { overloaded: 0, shutting_down: 0 },
    last_minute: {
      seconds: 60,
      by_kind: {},
      refused: { overloaded: 0, shutting_down: 0 },
      p50_ms: 0,
      p99_ms: 0,
      latency: empty,
    },
    series: {
      step_ms: step,
      from: to - 60 * step,
      to,
      points: Array.from({ length: 60 }, () => ({ ...emptyPoint })),
    },
    attention: [],
    attention_count: { flagged: 0, open: 0, more: false },
    operator_actions: true,
    timeline: [],
    ...changes,
  };
}

/**
 * seriesWith is a series read at `end` (a whole second) whose last point holds `last`: its
 * points start at multiples of 5 s, the last one holding the second before `end`.
 */
function seriesWith(last: Partial<DashboardState['series']['points'][number]>, end = to) {
  const points = Array.from({ length: 60 }, () => ({ ...emptyPoint }));
  points[59] = { ...emptyPoint, ...last };
  const lastStart = Math.floor((end - 1000) / step) * step;
  return { step_ms: step, from: lastStart - 59 * step, to: end, points };
}

function run(id: string, changes: Partial<RecordedOrder> = {}): RecordedOrder {
  return {
    order_id: `order-${id}`,
    run_id: id,
    state: 'finished',
    status: 'error',
    attempt: 1,
    error: { kind: 'no_courier', message: 'no courier is available' },
    needs_operator: false,
    steps: [],
    created_at: '2027-01-15T08:00:00.000Z',
    updated_at: '2027-01-15T08:00:01.000Z',
    ...changes,
  };
}

function row(orderId: string, endedAt: number, status: 'ok' | 'error' = 'ok') {
  return {
    seq: 0,
    order_id: orderId,
    started_at: endedAt - 10,
    duration_ms: 10,
    status,
    ...(status === 'error' ? { kind: 'vendor_unavailable' } : {}),
    steps: [],
  };
}

describe('mergeDashboardStates', () => {
  it('gives back the state of one process, as the server serves it', async () => {
    const test = buildObservedApp({ metrics: false, compensationMaxAttempts: 1 });
    built.push(test);
    const post = (payload: object) => test.app.inject({ method: 'POST', url: '/order', payload });
    const fast = { payment: 1, vendor: 1, courier: 1 };
    await post({ order_id: 'ok', amount: 1, delay_ms: fast });
    await post({ order_id: 'declined', amount: 1, fail_step: 'payment', delay_ms: fast });
    await post({
      order_id: 'flagged',
      amount: 1,
      fail_step: 'courier',
      delay_ms: fast,
      fail_compensation: { payment: 5 },
    });
    await test.service.ledger.idle();
    const state = (await test.app.inject({ url: '/dashboard/state' })).json<DashboardState>();
    expect(state.attention).toHaveLength(1);
    expect(state.timeline).toHaveLength(3);
    expect(mergeDashboardStates([state])).toEqual(state);
  });

  it("checks a state by its schema with TypeBox's own compiler, as a worker checks another's", async () => {
    const test = buildObservedApp({ metrics: false });
    built.push(test);
    await test.app.inject({ method: 'POST', url: '/order', payload: { order_id: 'o', amount: 1 } });
    const state = (await test.app.inject({ url: '/dashboard/state' })).json<DashboardState>();
    const schema = TypeCompiler.Compile(DashboardState);
    expect(schema.Check(state), 'as served').toBe(true);
    const wrongStatus = structuredClone(state);
    Object.assign(wrongStatus.timeline[0]!, { status: 'fine' });
    expect(schema.Check(wrongStatus), 'a status outside its enum').toBe(false);
    expect(schema.Check({ ...state, series: undefined }), 'without its series').toBe(false);
  });

  it('sums counters and series; takes the shared pool once, at its busiest view', () => {
    const a = stateOf({
      pool: { size: 8, in_use: 3, waiting: 0 },
      orders_in_flight: 4,
      steps_in_flight: 9,
      orders_total: 100,
      orders_per_second: 2.5,
      refused_per_second: 1,
      by_kind: { ok: 90, timeout: 10 },
      refused: { overloaded: 7, shutting_down: 0 },
      series: seriesWith({ ok: 10, errors: 1, refused: 3 }),
    });
    const b = stateOf({
      pool: { size: 8, in_use: 5, waiting: 2 },
      orders_in_flight: 1,
      steps_in_flight: 2,
      orders_total: 50,
      orders_per_second: 0.5,
      refused_per_second: 2,
      by_kind: { ok: 45, payment_declined: 5 },
      refused: { overloaded: 1, shutting_down: 2 },
      overloaded: true,
      operator_actions: false,
      series: seriesWith({ ok: 5, timeouts: 2 }),
    });
    const got = mergeDashboardStates([a, b]);
    expect(got.pool, 'size once, in use and waiting the largest view').toEqual({
      size: 8,
      in_use: 5,
      waiting: 2,
    });
    expect(got.orders_in_flight).toBe(5);
    expect(got.steps_in_flight).toBe(11);
    expect(got.orders_total).toBe(150);
    expect(got.orders_per_second).toBe(3);
    expect(got.refused_per_second).toBe(3);
    expect(got.by_kind).toEqual({ ok: 135, timeout: 10, payment_declined: 5 });
    expect(got.refused).toEqual({ overloaded: 8, shutting_down: 2 });
    expect(got.overloaded, 'if any process sheds load').toBe(true);
    expect(got.operator_actions, 'only if every process has them').toBe(false);
    expect(got.series.points.at(-1)).toMatchObject({ ok: 15, errors: 1, timeouts: 2, refused: 3 });
    expect(got.series.points.slice(0, -1).every((point) => point.ok === 0)).toBe(true);
  });

  it('computes percentiles from the merged histograms, not from the percentiles', () => {
    // One process served 50 orders in 10 ms, the other 50 in 100 ms: the median of all 100
    // is a 10 ms one, where the mean of the two medians would say 55 ms.
    const fast = histogramOf(10, 50);
    const slow = histogramOf(100, 50);
    const minute = (latency: typeof fast, p50: number) => ({
      seconds: 60,
      by_kind: { ok: 50 },
      refused: { overloaded: 0, shutting_down: 0 },
      p50_ms: p50,
      p99_ms: p50,
      latency,
    });
    const got = mergeDashboardStates([
      stateOf({ last_minute: minute(fast, 10), series: seriesWith({ ok: 50, latency: fast }) }),
      stateOf({ last_minute: minute(slow, 100), series: seriesWith({ ok: 50, latency: slow }) }),
    ]);
    for (const [name, merged] of [
      ['last minute', got.last_minute],
      ['last point', got.series.points.at(-1)!],
    ] as const) {
      expect(merged.p50_ms, `${name} p50`).toBeGreaterThan(10 / 1.19);
      expect(merged.p50_ms, `${name} p50`).toBeLessThan(10 * 1.19);
      expect(merged.p99_ms, `${name} p99`).toBeGreaterThan(100 / 1.19);
      expect(merged.p99_ms, `${name} p99`).toBeLessThan(100 * 1.19);
      expect(
        merged.latency.counts.reduce((x, y) => x + y, 0),
        `${name} orders`,
      ).toBe(100);
    }
  });

  it('matches series points by their time when the processes were read a second apart', () => {
    // `a` was read in the last second of a point, `b` in the first second of the next one:
    // b's series has moved on by one point.
    const a = stateOf({ series: seriesWith({ ok: 4 }, to + 4000) });
    const b = stateOf({ series: seriesWith({ ok: 1 }, to + 6000) });
    a.series.points[0]!.ok = 99;
    const got = mergeDashboardStates([a, b]);
    expect(got.series.to, 'the latest end').toBe(to + 6000);
    expect(got.series.from).toBe(b.series.from);
    expect(got.series.points).toHaveLength(60);
    expect(got.series.points.at(-1)?.ok, "b's last point alone").toBe(1);
    expect(got.series.points.at(-2)?.ok, "a's last point, one point back").toBe(4);
    expect(
      got.series.points.reduce((sum, point) => sum + point.ok, 0),
      "a's oldest point is older than the merged span",
    ).toBe(5);
  });

  it('lists the runs needing attention once, from the shared store, the flagged first', () => {
    const older = run('run-1', { created_at: '2027-01-15T07:00:00.000Z' });
    const flaggedEarly = run('run-2', { updated_at: '2027-01-15T08:00:01.000Z' });
    const flaggedLate = run('run-2', {
      needs_operator: true,
      updated_at: '2027-01-15T08:00:05.000Z',
    });
    const got = mergeDashboardStates([
      stateOf({
        attention: [older, flaggedEarly],
        attention_count: { flagged: 0, open: 2, more: false },
      }),
      stateOf({
        attention: [flaggedLate, older],
        attention_count: { flagged: 1, open: 1, more: false },
      }),
    ]);
    expect(got.attention.map((r) => [r.run_id, r.needs_operator])).toEqual([
      ['run-2', true],
      ['run-1', false],
    ]);
    expect(got.attention_count, 'counted once, as the largest count').toEqual({
      flagged: 1,
      open: 2,
      more: false,
    });
  });

  it('merges the timelines by time, keeping the newest orders and the newest failures', () => {
    const a = stateOf({
      timeline: [row('a3', 3000), row('a2', 2000, 'error'), row('a1', 1000, 'error')],
    });
    const b = stateOf({ timeline: [row('b4', 4000), row('b2', 2500), row('b0', 500)] });
    expect(mergeDashboardStates([a, b]).timeline.map((r) => r.order_id)).toEqual([
      'b4',
      'a3',
      'b2',
      'a2',
      'a1',
      'b0',
    ]);
    // Two of each: the newest two orders, then the newest two failures.
    expect(
      mergeDashboardStates([a, b], { recentOrders: 2 }).timeline.map((r) => r.order_id),
    ).toEqual(['b4', 'a3', 'a2', 'a1']);
  });

  it('refuses no state, and series it cannot line up', () => {
    expect(() => mergeDashboardStates([])).toThrow(TypeError);
    const other = stateOf();
    other.series.step_ms = 1000;
    expect(() => mergeDashboardStates([stateOf(), other])).toThrow(RangeError);
  });

  it('changes none of its inputs', () => {
    const a = stateOf({ series: seriesWith({ ok: 1, latency: histogramOf(5, 1) }) });
    const b = stateOf({ series: seriesWith({ ok: 2, latency: histogramOf(7, 2) }) });
    const before = structuredClone([a, b]);
    mergeDashboardStates([a, b]);
    expect([a, b]).toEqual(before);
  });
});
