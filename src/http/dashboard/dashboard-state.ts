import { Type, type Static } from '@sinclair/typebox';
import {
  addInto,
  latencyBinCount,
  latencySummary,
  type LatencySummary,
  type LatencyHistogram as Histogram,
} from '../../observability/latency-histogram.js';
import { defaultRecentOrders } from '../../observability/recent-orders.js';
import { literals, RecordedOrder } from '../schemas.js';

/** How many runs needing attention the dashboard lists. */
export const attentionLimit = 20;
/** How many runs needing attention the dashboard counts; past it, `attention_count.more`. */
export const attentionCountLimit = 100;

const TimelineStep = Type.Object({
  name: Type.String(),
  status: Type.String(),
  end_ms: Type.Number({ description: "When the step ended, in ms from the order's start." }),
  detail: Type.Optional(Type.String()),
  wait_ms: Type.Optional(
    Type.Number({ description: 'How long the step waited for a courier slot, in ms.' }),
  ),
});

const TimelineOrder = Type.Object({
  seq: Type.Integer({ description: 'The order of settling within one process.' }),
  order_id: Type.String(),
  started_at: Type.Integer({ description: 'Wall-clock start, ms since the epoch.' }),
  duration_ms: Type.Number(),
  status: literals(['ok', 'error']),
  kind: Type.Optional(Type.String()),
  canceled_at_ms: Type.Optional(Type.Number()),
  steps: Type.Array(TimelineStep),
});

const LatencyHistogram = Type.Object(
  {
    offset: Type.Integer({ minimum: 0, description: 'The bin of `counts[0]`.' }),
    counts: Type.Array(Type.Integer({ minimum: 0 })),
  },
  {
    description:
      'Orders by latency: `counts[i]` orders fell in bin `offset + i`. Bin 0 is under 1 ms; ' +
      'bin b from 1 to 64 is [2^((b-1)/4), 2^(b/4)) ms; bin 65 is 65,536 ms and over. ' +
      'Histograms add bin by bin (several processes, several windows); percentiles do not.',
  },
);

const p50 = Type.Number({ description: 'Median latency of the orders settled, in ms; 0 if none.' });
const p99 = Type.Number({ description: '99th percentile latency, in ms; 0 if none settled.' });
const refusedByReason = Type.Object({
  overloaded: Type.Integer(),
  shutting_down: Type.Integer(),
});

const SeriesPoint = Type.Object({
  ok: Type.Integer({ description: 'Orders that succeeded.' }),
  errors: Type.Integer({ description: 'Orders that failed with a kind other than `timeout`.' }),
  timeouts: Type.Integer({ description: 'Orders that failed with `timeout`.' }),
  refused: Type.Integer({
    description: 'Orders refused before any step ran (`overloaded`, `shutting_down`).',
  }),
  p50_ms: p50,
  p99_ms: p99,
  latency: LatencyHistogram,
});

const Series = Type.Object(
  {
    step_ms: Type.Integer({ description: 'The width of a point, in ms (5,000).' }),
    from: Type.Integer({ description: 'Start of the first point, ms since the epoch.' }),
    to: Type.Integer({
      description: 'End of the last point, exclusive: the start of the second being counted.',
    }),
    points: Type.Array(SeriesPoint),
  },
  {
    description:
      'The last 5 minutes in points of `step_ms`, oldest first, aligned on multiples of ' +
      '`step_ms` since the epoch: point i covers [from + i·step_ms, from + (i+1)·step_ms), cut ' +
      'at `to` (whole seconds only, so the last point may be shorter).',
  },
);

const LastMinute = Type.Object(
  {
    seconds: Type.Integer(),
    by_kind: Type.Record(Type.String(), Type.Integer(), {
      description: 'Orders settled by outcome kind (`ok` for success); kinds not seen left out.',
    }),
    refused: refusedByReason,
    p50_ms: p50,
    p99_ms: p99,
    latency: LatencyHistogram,
  },
  { description: 'The last `seconds` seconds, the one being counted included.' },
);

const AttentionCount = Type.Object(
  {
    flagged: Type.Integer({ description: 'Runs with a compensation flagged for an operator.' }),
    open: Type.Integer({
      description: 'Runs whose compensations are still retried, none flagged.',
    }),
    more: Type.Boolean({
      description: `Whether more runs need attention than were counted (${attentionCountLimit}).`,
    }),
  },
  { description: 'The runs needing attention, counted.' },
);

/**
 * DashboardState is the body of `GET /dashboard/state`, polled by the dashboard: the courier
 * pool, the work in flight, the admission's overload, the series and the last minute (rates,
 * latency, kinds), the runs that need an operator's eye and the timeline of recent orders.
 * Its parts are the observability layer's own types (recent-orders.ts, order-series.ts): a
 * field added there must be added here, or the serializer drops it. States of several
 * processes combine with {@link mergeDashboardStates}.
 */
export const DashboardState = Type.Object({
  now: Type.Integer({
    description: "The server's clock when the state was read, ms since the epoch.",
  }),
  pool: Type.Object({ size: Type.Integer(), in_use: Type.Integer(), waiting: Type.Integer() }),
  steps_in_flight: Type.Integer(),
  orders_in_flight: Type.Integer(),
  overloaded: Type.Boolean({
    description:
      'Whether admission is shedding load now: it says it is overloaded (the ' +
      '`order_pipeline_admission_overloaded` metric), or an order was refused as ' +
      '`overloaded` within the last second.',
  }),
  orders_total: Type.Integer({ description: 'Orders settled since start.' }),
  orders_per_second: Type.Number({
    description: 'Orders settled per second over the last 5 whole seconds, counted by the server.',
  }),
  refused_per_second: Type.Number({
    description: 'Orders refused per second over the last 5 whole seconds, for any reason.',
  }),
  by_kind: Type.Record(Type.String(), Type.Integer(), {
    description: 'Orders settled since start, by outcome kind (`ok` for success).',
  }),
  refused: Type.Object(
    { overloaded: Type.Integer(), shutting_down: Type.Integer() },
    { description: 'Orders refused before any step ran, since start, by reason.' },
  ),
  last_minute: LastMinute,
  series: Series,
  attention: Type.Array(RecordedOrder, {
    description:
      `Up to ${attentionLimit} runs with a compensation in progress or flagged for an ` +
      'operator, the flagged first, then oldest first, each as `GET /order/{order_id}` shows it.',
  }),
  attention_count: AttentionCount,
  operator_actions: Type.Boolean({
    description: 'Whether the operator actions (settling a flag) are enabled.',
  }),
  timeline: Type.Array(TimelineOrder, {
    description:
      'The last 30 settled orders and the last 30 failures, newest first, each once: a ' +
      'failure stays in view after successes have pushed it out of the last 30.',
  }),
});
export type DashboardState = Static<typeof DashboardState>;
type TimelineRow = DashboardState['timeline'][number];
type SeriesView = DashboardState['series'];

/**
 * attentionOrder sorts runs needing attention as the dashboard lists them: flagged for an
 * operator first, then the oldest first (by creation, then run id).
 */
export function attentionOrder(a: RecordedOrder, b: RecordedOrder): number {
  if (a.needs_operator !== b.needs_operator) return a.needs_operator ? -1 : 1;
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : 0;
}

/** Options of {@link mergeDashboardStates}. */
export interface MergeOptions {
  /** How many of the newest orders, and apart of the newest failures, the timeline keeps. */
  readonly recentOrders?: number;
}

/**
 * mergeDashboardStates combines the states of several processes serving one service (a
 * cluster of `WORKERS`, sharing one store and one courier pool) into the state of the whole,
 * without changing its inputs:
 *
 * - counters (orders and steps in flight, totals, rates, kinds, refusals, the last minute,
 *   each point of the series) are summed; latency histograms are added bin by bin and the
 *   percentiles computed again from the sums. Series points are matched by their start on
 *   the wall clock; the merged series ends where the latest one does, and a process read a
 *   second earlier contributes one second less to the last point;
 * - `overloaded` if any process is shedding load; operator actions if every process has them;
 * - the pool is shared: each process reports its last view of the same slots (Redis' counts,
 *   read at slightly different moments), so size, in use and waiting are each the largest
 *   reported, the busiest recent view, not a sum;
 * - the runs needing attention come from the shared store, so every process sees the same
 *   runs: they are deduplicated by `run_id` (the most recently updated copy kept), listed
 *   as one process lists them, and counted as the largest count reported;
 * - the timelines are merged by the time each order ended, newest first, then the newest
 *   `recentOrders` orders and the newest `recentOrders` failures kept (30 each by default),
 *   as one process keeps them; a row's `seq` stays that of its own process.
 *
 * Merging one state gives that state back. Throws a TypeError when `states` is empty, a
 * RangeError when the series have different point widths or a histogram has a bin outside
 * the known ones.
 */
export function mergeDashboardStates(
  states: readonly DashboardState[],
  options: MergeOptions = {},
): DashboardState {
  const [first] = states;
  if (first === undefined) throw new TypeError('mergeDashboardStates needs at least one state');
  const sum = (read: (state: DashboardState) => number): number =>
    states.reduce((total, state) => total + read(state), 0);
  const max = (read: (state: DashboardState) => number): number => Math.max(...states.map(read));
  return {
    now: max((s) => s.now),
    pool: {
      size: max((s) => s.pool.size),
      in_use: max((s) => s.pool.in_use),
      waiting: max((s) => s.pool.waiting),
    },
    steps_in_flight: sum((s) => s.steps_in_flight),
    orders_in_flight: sum((s) => s.orders_in_flight),
    overloaded: states.some((s) => s.overloaded),
    orders_total: sum((s) => s.orders_total),
    orders_per_second: sum((s) => s.orders_per_second),
    refused_per_second: sum((s) => s.refused_per_second),
    by_kind: sumRecords(states.map((s) => s.by_kind)),
    refused: {
      overloaded: sum((s) => s.refused.overloaded),
      shutting_down: sum((s) => s.refused.shutting_down),
    },
    last_minute: {
      seconds: max((s) => s.last_minute.seconds),
      by_kind: sumRecords(states.map((s) => s.last_minute.by_kind)),
      refused: {
        overloaded: sum((s) => s.last_minute.refused.overloaded),
        shutting_down: sum((s) => s.last_minute.refused.shutting_down),
      },
      ...latencyOf(states.map((s) => s.last_minute.latency)),
    },
    series: mergeSeries(states.map((s) => s.series)),
    attention: mergeAttention(states.flatMap((s) => s.attention)),
    attention_count: {
      flagged: max((s) => s.attention_count.flagged),
      open: max((s) => s.attention_count.open),
      more: states.some((s) => s.attention_count.more),
    },
    operator_actions: states.every((s) => s.operator_actions),
    timeline: mergeTimelines(
      states.map((s) => s.timeline),
      options.recentOrders ?? defaultRecentOrders,
    ),
  };
}

function sumRecords(records: readonly Record<string, number>[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const record of records) {
    for (const [key, count] of Object.entries(record)) sums[key] = (sums[key] ?? 0) + count;
  }
  return sums;
}

/** latencyOf adds `histograms` and computes the percentiles of the sum. */
function latencyOf(histograms: readonly Histogram[]): LatencySummary {
  const bins = new Float64Array(latencyBinCount);
  for (const histogram of histograms) addInto(bins, histogram);
  return latencySummary(bins);
}

/**
 * mergeSeries sums the points that start at the same time, over the span of the latest
 * series: as many points as the longest series, ending with the point that holds `to`.
 */
function mergeSeries(series: readonly SeriesView[]): SeriesView {
  const [first] = series as [SeriesView, ...SeriesView[]];
  const step = first.step_ms;
  if (series.some((s) => s.step_ms !== step)) {
    throw new RangeError(
      `series of different point widths cannot merge: ${series.map((s) => s.step_ms).join(', ')} ms`,
    );
  }
  const to = Math.max(...series.map((s) => s.to));
  const count = Math.max(...series.map((s) => s.points.length));
  const lastStart = Math.floor((to - 1) / step) * step;
  const from = lastStart - (count - 1) * step;
  const slots = Array.from({ length: count }, () => ({
    ok: 0,
    errors: 0,
    timeouts: 0,
    refused: 0,
    histograms: [] as Histogram[],
  }));
  for (const s of series) {
    s.points.forEach((point, i) => {
      const slot = slots[(s.from + i * step - from) / step];
      if (slot === undefined) return;
      slot.ok += point.ok;
      slot.errors += point.errors;
      slot.timeouts += point.timeouts;
      slot.refused += point.refused;
      slot.histograms.push(point.latency);
    });
  }
  return {
    step_ms: step,
    from,
    to,
    points: slots.map(({ histograms, ...counts }) => ({ ...counts, ...latencyOf(histograms) })),
  };
}

/** mergeAttention keeps one copy of each run, the most recently updated, in list order. */
function mergeAttention(runs: readonly RecordedOrder[]): RecordedOrder[] {
  const byRun = new Map<string, RecordedOrder>();
  for (const run of runs) {
    const kept = byRun.get(run.run_id);
    if (kept === undefined || run.updated_at > kept.updated_at) byRun.set(run.run_id, run);
  }
  return [...byRun.values()].sort(attentionOrder).slice(0, attentionLimit);
}

/**
 * mergeTimelines merges timelines (each newest first) by the time each order ended, keeping
 * each timeline's own order, then keeps the newest `keep` orders and the newest `keep`
 * failures, as {@link RecentOrders} keeps them in one process.
 */
function mergeTimelines(timelines: readonly TimelineRow[][], keep: number): TimelineRow[] {
  const heads = timelines.map(() => 0);
  const rows: TimelineRow[] = [];
  let orders = 0;
  let failures = 0;
  for (;;) {
    let newest = -1;
    let newestEnd = -Infinity;
    timelines.forEach((timeline, i) => {
      const row = timeline[heads[i] ?? 0];
      if (row !== undefined && row.started_at + row.duration_ms > newestEnd) {
        newest = i;
        newestEnd = row.started_at + row.duration_ms;
      }
    });
    if (newest < 0) return rows;
    const index = heads[newest] ?? 0;
    heads[newest] = index + 1;
    const row = timelines[newest]?.[index] as TimelineRow;
    const failed = row.status === 'error';
    if (orders < keep || (failed && failures < keep)) rows.push(row);
    orders++;
    if (failed) failures++;
    if (orders >= keep && failures >= keep) return rows;
  }
}
