import { readdir } from 'node:fs/promises';
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Pool } from '../core/semaphore.js';
import { BucketHistogram, type HistogramSeries } from './bucket-histogram.js';
import { ranKinds } from '../order/errors.js';
import type { StepStatus } from '../order/pipeline.js';
import type { ClusterView, Gathered } from './cluster-views.js';
import type { PoolWait } from './observed-pool.js';
import type { OrderRecord } from './order-record.js';

/** Every metric of the service starts with this prefix. */
export const metricsPrefix = 'order_pipeline_';

export interface OrderMetricsOptions {
  /** The courier pool whose slots in use and waiters are read at each scrape. */
  courierPool: Pool;
  /** Steps in flight across all orders (the tracker), read at each scrape. */
  stepsInFlight: () => number;
  /** Admission control, if any: its refusals and orders in flight are read at each scrape. */
  admission?: AdmissionView | undefined;
  /** Names of the pipeline's steps, so their series exist from the start. */
  stepNames: readonly string[];
  /**
   * Also collect the default process metrics (CPU, memory, event loop lag, GC). Their
   * collectors cannot be stopped, so leave this off for short-lived registries (tests).
   */
  defaultMetrics?: boolean;
}

/**
 * Default metrics whose collection walks every handle of the process (each connection), or
 * lists a directory on the event loop: at a thousand connections a scrape stalled the server
 * for about 5 ms, delaying every request behind it.
 */
const walkingDefaults = [
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
  'process_open_fds',
];

/**
 * collectDefaultsOffTheLoop registers prom-client's default process metrics but those of
 * {@link walkingDefaults}; `process_open_fds` comes back, read off the event loop.
 */
function collectDefaultsOffTheLoop(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of walkingDefaults) registry.removeSingleMetric(name);
  if (process.platform !== 'linux') return;
  new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers: [registry],
    async collect() {
      try {
        // Less the descriptor that lists the directory.
        this.set((await readdir('/proc/self/fd')).length - 1);
      } catch {
        // Left as it was: the count is unavailable, not zero.
      }
    },
  });
}

/** What the metrics read of admission control. */
export interface AdmissionView {
  readonly inflight: number;
  readonly refused: Readonly<Record<string, number>>;
  /** True while admission keeps the courier queue short because orders are being refused. */
  readonly overloaded: boolean;
}

/**
 * AnswerView is what the metrics read of the service's answer to an order: whether it ran
 * (its outcome), why it failed or was refused, and whether it was replayed from the record.
 */
export interface AnswerView {
  readonly outcome?: { readonly status: 'ok' | 'error' } | undefined;
  readonly error?: { readonly kind: string } | undefined;
  readonly replayed: boolean;
}

/**
 * Kinds of the answers to orders that never ran: refused at the HTTP edge (their body, its
 * type or size) or by the service (admission, the idempotency key, the store).
 */
const refusalKinds = [
  'bad_request',
  'payload_too_large',
  'unsupported_media_type',
  'idempotency_conflict',
  'order_in_progress',
  'overloaded',
  'shutting_down',
  'unavailable',
] as const;

const stepStatuses: readonly StepStatus[] = ['ok', 'error', 'canceled'];
/** Seconds; the defaults of Prometheus clients, with finer steps below 5 ms for pool waits. */
const waitBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * OrderMetrics holds the service's Prometheus metrics in a registry of its own (never the
 * global one, so any number of apps can live in one process).
 *
 * Recording an order costs a few map lookups and additions: every labelled child a record
 * can touch is created up front, and label values are bounded (outcome, kind, step, status;
 * never an order id). Gauges of the pool and the tracker are read only when scraped.
 *
 * Each metric says how the workers of `WORKERS=N` add up (its `aggregator`, read by
 * {@link aggregateMetrics}): counters and histograms, and gauges of what each worker holds,
 * are summed; gauges of the courier pool, which every worker reads from the one shared pool,
 * take the largest reading (summing would count the pool once per worker), and so does
 * the overload flag (1 if any worker sheds load).
 */
export class OrderMetrics {
  readonly registry = new Registry();
  readonly #orders: Counter<'outcome' | 'kind'>;
  /** Orders that ran, by kind (`none` for success). */
  readonly #ran = new Map<string, Counter.Internal>();
  /** Orders answered without running, by kind. */
  readonly #refused = new Map<string, Counter.Internal>();
  readonly #orderDuration = new Map<string, HistogramSeries>();
  readonly #stepDuration: BucketHistogram<'step' | 'status'>;
  readonly #stepChildren = new Map<string, Map<string, HistogramSeries>>();
  readonly #courierWait: Record<'acquired' | 'canceled', HistogramSeries>;
  readonly #compensations: Counter<'step' | 'result'>;
  readonly #operatorFlags: Counter<'step'>;
  readonly #ordersRecovered: Counter;

  constructor(options: OrderMetricsOptions) {
    const registers = [this.registry];
    this.#orders = new Counter({
      name: `${metricsPrefix}orders_total`,
      help:
        'Orders answered, by outcome (ok, error: it ran; refused: it did not) and kind ' +
        '(none when ok); a replayed answer is not counted again.',
      labelNames: ['outcome', 'kind'],
      registers,
      aggregator: 'sum',
    });
    this.#ran.set('none', this.#orders.labels('ok', 'none'));
    for (const kind of ranKinds) this.#ran.set(kind, this.#orders.labels('error', kind));
    for (const kind of refusalKinds) this.#refused.set(kind, this.#orders.labels('refused', kind));
    for (const child of [...this.#ran.values(), ...this.#refused.values()]) child.inc(0);

    // The histograms of the order path bind their series once (see BucketHistogram).
    const orderDuration = new BucketHistogram({
      name: `${metricsPrefix}order_duration_seconds`,
      help: 'Time from the start of an order until every one of its steps had settled.',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['ok', 'error']) {
      this.#orderDuration.set(outcome, orderDuration.series(outcome));
    }

    this.#stepDuration = new BucketHistogram({
      name: `${metricsPrefix}step_duration_seconds`,
      help: 'Time from the start of an order until the step settled, by step and status.',
      labelNames: ['step', 'status'],
      registers,
    });
    for (const step of options.stepNames) {
      for (const status of stepStatuses) this.#stepChild(step, status);
    }

    const courierWait = new BucketHistogram({
      name: `${metricsPrefix}courier_wait_seconds`,
      help: 'Time a courier step waited for a pool slot, by result (acquired, canceled).',
      labelNames: ['result'],
      buckets: waitBuckets,
      registers,
    });
    this.#courierWait = {
      acquired: courierWait.series('acquired'),
      canceled: courierWait.series('canceled'),
    };

    const { courierPool, stepsInFlight } = options;
    new Gauge({
      name: `${metricsPrefix}courier_pool_slots`,
      help: 'Slots of the courier pool.',
      registers,
      // The same pool in every worker: the shared pool's size, not one per worker.
      aggregator: 'max',
      collect() {
        this.set(courierPool.size);
      },
    });
    new Gauge({
      name: `${metricsPrefix}courier_pool_slots_in_use`,
      help: 'Courier pool slots held right now.',
      registers,
      // Every worker reads the shared pool's count (as Redis last told it): the busiest view.
      aggregator: 'max',
      collect() {
        this.set(courierPool.inUse);
      },
    });
    new Gauge({
      name: `${metricsPrefix}courier_pool_waiters`,
      help: 'Courier steps queued for a pool slot right now.',
      registers,
      aggregator: 'max',
      collect() {
        this.set(courierPool.waiting);
      },
    });
    new Gauge({
      name: `${metricsPrefix}steps_in_flight`,
      help: 'Steps started and not yet settled, across all orders.',
      registers,
      aggregator: 'sum',
      collect() {
        this.set(stepsInFlight());
      },
    });

    const { admission } = options;
    if (admission !== undefined) {
      new Counter({
        name: `${metricsPrefix}orders_rejected_total`,
        help: 'Orders refused before any step ran, by kind (overloaded, shutting_down).',
        labelNames: ['kind'],
        registers,
        aggregator: 'sum',
        collect() {
          this.reset();
          for (const [kind, count] of Object.entries(admission.refused)) {
            this.labels(kind).inc(count);
          }
        },
      });
      new Gauge({
        name: `${metricsPrefix}orders_in_flight`,
        help: 'Orders admitted and not yet answered.',
        registers,
        aggregator: 'sum',
        collect() {
          this.set(admission.inflight);
        },
      });
      new Gauge({
        name: `${metricsPrefix}admission_overloaded`,
        help: 'Whether a standing queue caps the wait admitted at OVERLOAD_WAIT_MS (1) or not (0).',
        registers,
        // 1 if any worker sheds load.
        aggregator: 'max',
        collect() {
          this.set(admission.overloaded ? 1 : 0);
        },
      });
    }

    this.#compensations = new Counter({
      name: `${metricsPrefix}compensations_total`,
      help: 'Compensation attempts, by step and result (compensated, compensation_failed).',
      labelNames: ['step', 'result'],
      registers,
      aggregator: 'sum',
    });
    this.#operatorFlags = new Counter({
      name: `${metricsPrefix}operator_flags_total`,
      help: 'Compensations that exhausted their retries and were flagged for an operator.',
      labelNames: ['step'],
      registers,
      aggregator: 'sum',
    });
    for (const step of options.stepNames) {
      for (const result of compensationResults) this.#compensations.labels(step, result).inc(0);
      this.#operatorFlags.labels(step).inc(0);
    }
    this.#ordersRecovered = new Counter({
      name: `${metricsPrefix}orders_recovered_total`,
      help: 'Orders left running by a dead instance, failed as interrupted and compensated.',
      registers,
      aggregator: 'sum',
    });

    if (options.defaultMetrics === true) collectDefaultsOffTheLoop(this.registry);
  }

  /**
   * recordOrder observes the duration of an order whose steps have all settled, and its
   * steps' durations. The order itself is counted when it is answered ({@link recordAnswer}).
   */
  recordOrder(record: OrderRecord): void {
    const { outcome } = record;
    this.#orderDuration.get(outcome.status)?.observe(record.durationMs / 1000);
    for (const step of outcome.steps) {
      this.#stepChild(step.name, step.status).observe(step.durationMs / 1000);
    }
  }

  /**
   * recordAnswer counts the service's answer to an order in `orders_total`: as `ok` or
   * `error` if it ran, as `refused` if it did not; a replayed answer is not counted again.
   */
  recordAnswer(answer: AnswerView): void {
    if (answer.replayed) return;
    const kind = answer.error?.kind ?? 'none';
    if (answer.outcome === undefined) {
      this.recordRefusal(kind);
      return;
    }
    const child = this.#ran.get(kind) ?? this.#child(this.#ran, answer.outcome.status, kind);
    child.inc();
  }

  /**
   * recordRefusal counts an order answered without running, with `kind`: one the HTTP edge
   * refused before it reached the service (its body, type or size), or one the service
   * refused (see {@link recordAnswer}).
   */
  recordRefusal(kind: string): void {
    (this.#refused.get(kind) ?? this.#child(this.#refused, 'refused', kind)).inc();
  }

  /** #child makes the series of a kind met for the first time, kept in `children`. */
  #child(children: Map<string, Counter.Internal>, outcome: string, kind: string): Counter.Internal {
    const child = this.#orders.labels(outcome, kind);
    children.set(kind, child);
    return child;
  }

  /** recordCourierWait observes one settled acquire of the courier pool. */
  recordCourierWait(wait: PoolWait): void {
    const child = wait.acquired ? this.#courierWait.acquired : this.#courierWait.canceled;
    child.observe((wait.settledAt - wait.startedAt) / 1000);
  }

  /**
   * stepChild is the series of one step and status, made on first use: the usual ones exist
   * from the start; a rarer status (`abandoned`) appears the first time it happens.
   */
  #stepChild(step: string, status: string): HistogramSeries {
    let byStatus = this.#stepChildren.get(step);
    if (byStatus === undefined) {
      byStatus = new Map<string, HistogramSeries>();
      this.#stepChildren.set(step, byStatus);
    }
    let child = byStatus.get(status);
    if (child === undefined) {
      child = this.#stepDuration.series(step, status);
      byStatus.set(status, child);
    }
    return child;
  }

  /** recordCompensation counts one compensation attempt of `step` and its result. */
  recordCompensation(step: string, result: 'compensated' | 'compensation_failed'): void {
    this.#compensations.labels(step, result).inc();
  }

  /** recordOperatorFlag counts a compensation of `step` flagged for an operator. */
  recordOperatorFlag(step: string): void {
    this.#operatorFlags.labels(step).inc();
  }

  /** recordRecovery counts an order recovered from a dead instance. */
  recordRecovery(): void {
    this.#ordersRecovered.inc();
  }

  /** scrape renders every metric in the Prometheus text format. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** part is this process's metrics as prom-client's JSON: its part of {@link metricsView}. */
  part(): Promise<MetricsPart> {
    return this.registry.getMetricsAsJSON();
  }
}

const compensationResults = ['compensated', 'compensation_failed'] as const;

/** MetricsPart is one worker's metrics, as prom-client's `getMetricsAsJSON` gives them. */
export type MetricsPart = readonly object[];

/** metricsView is the metrics of each worker of `WORKERS=N`, as {@link OrderMetrics.part}. */
export const metricsView: ClusterView<MetricsPart> = {
  name: 'metrics',
  isPart: (value): value is MetricsPart => Array.isArray(value) && value.every(isMetric),
};

/** isMetric tells whether `value` has the shape of one metric of `getMetricsAsJSON`. */
function isMetric(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    'name' in value &&
    typeof value.name === 'string' &&
    'values' in value &&
    Array.isArray(value.values)
  );
}

/**
 * aggregateMetrics renders the metrics of every worker as one, in the Prometheus text
 * format: each metric added up across workers by its `aggregator` (see {@link OrderMetrics}),
 * and `order_pipeline_workers{state}` telling how many workers answered and how many are
 * missing (left out: they did not answer in time). Throws if a part holds a metric whose
 * aggregator prom-client does not know.
 */
export function aggregateMetrics(gathered: Gathered<MetricsPart>): Promise<string> {
  const registry = AggregatorRegistry.aggregate([...gathered.parts]);
  const workers = new Gauge({
    name: `${metricsPrefix}workers`,
    help: 'Workers whose metrics this scrape adds up (answered), and those left out because they did not answer in time (missing).',
    labelNames: ['state'],
    registers: [registry],
  });
  workers.labels('answered').set(gathered.parts.length);
  workers.labels('missing').set(gathered.missing);
  return registry.metrics();
}
