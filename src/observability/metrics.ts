import { readdir } from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Pool } from '../core/semaphore.js';
import { errorKinds } from '../order/errors.js';
import type { StepStatus } from '../order/pipeline.js';
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
 */
export class OrderMetrics {
  readonly registry = new Registry();
  readonly #orders = new Map<string, Counter.Internal>();
  readonly #orderDuration = new Map<string, Histogram.Internal<string>>();
  readonly #stepDuration: Histogram<'step' | 'status'>;
  readonly #stepChildren = new Map<string, Map<string, Histogram.Internal<'step' | 'status'>>>();
  readonly #courierWait: Record<'acquired' | 'canceled', Histogram.Internal<string>>;
  readonly #compensations: Counter<'step' | 'result'>;
  readonly #operatorFlags: Counter<'step'>;
  readonly #ordersRecovered: Counter;

  constructor(options: OrderMetricsOptions) {
    const registers = [this.registry];
    const orders = new Counter({
      name: `${metricsPrefix}orders_total`,
      help: 'Orders settled, by outcome (ok, error) and error kind (none when ok).',
      labelNames: ['outcome', 'kind'],
      registers,
    });
    this.#orders.set('none', orders.labels('ok', 'none'));
    for (const kind of errorKinds) this.#orders.set(kind, orders.labels('error', kind));
    for (const child of this.#orders.values()) child.inc(0);

    const orderDuration = new Histogram({
      name: `${metricsPrefix}order_duration_seconds`,
      help: 'Time from the start of an order until every one of its steps had settled.',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['ok', 'error']) {
      this.#orderDuration.set(outcome, orderDuration.labels(outcome));
    }

    this.#stepDuration = new Histogram({
      name: `${metricsPrefix}step_duration_seconds`,
      help: 'Time from the start of an order until the step settled, by step and status.',
      labelNames: ['step', 'status'],
      registers,
    });
    for (const step of options.stepNames) {
      for (const status of stepStatuses) this.#stepChild(step, status);
    }

    const courierWait = new Histogram({
      name: `${metricsPrefix}courier_wait_seconds`,
      help: 'Time a courier step waited for a pool slot, by result (acquired, canceled).',
      labelNames: ['result'],
      buckets: waitBuckets,
      registers,
    });
    this.#courierWait = {
      acquired: courierWait.labels('acquired'),
      canceled: courierWait.labels('canceled'),
    };

    const { courierPool, stepsInFlight } = options;
    new Gauge({
      name: `${metricsPrefix}courier_pool_slots`,
      help: 'Slots of the courier pool.',
      registers,
      collect() {
        this.set(courierPool.size);
      },
    });
    new Gauge({
      name: `${metricsPrefix}courier_pool_slots_in_use`,
      help: 'Courier pool slots held right now.',
      registers,
      collect() {
        this.set(courierPool.inUse);
      },
    });
    new Gauge({
      name: `${metricsPrefix}courier_pool_waiters`,
      help: 'Courier steps queued for a pool slot right now.',
      registers,
      collect() {
        this.set(courierPool.waiting);
      },
    });
    new Gauge({
      name: `${metricsPrefix}steps_in_flight`,
      help: 'Steps started and not yet settled, across all orders.',
      registers,
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
        collect() {
          this.set(admission.inflight);
        },
      });
      new Gauge({
        name: `${metricsPrefix}admission_overloaded`,
        help: 'Whether an order was refused as overloaded in the last second (1) or not (0): the wait admitted is then capped.',
        registers,
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
    });
    this.#operatorFlags = new Counter({
      name: `${metricsPrefix}operator_flags_total`,
      help: 'Compensations that exhausted their retries and were flagged for an operator.',
      labelNames: ['step'],
      registers,
    });
    this.#ordersRecovered = new Counter({
      name: `${metricsPrefix}orders_recovered_total`,
      help: 'Orders left running by a dead instance, failed as interrupted and compensated.',
      registers,
    });

    if (options.defaultMetrics === true) collectDefaultsOffTheLoop(this.registry);
  }

  /** recordOrder counts a settled order and observes its duration and its steps' durations. */
  recordOrder(record: OrderRecord): void {
    const { outcome } = record;
    this.#orders.get(outcome.error?.kind ?? 'none')?.inc();
    this.#orderDuration.get(outcome.status)?.observe(record.durationMs / 1000);
    for (const step of outcome.steps) {
      this.#stepChild(step.name, step.status).observe(step.durationMs / 1000);
    }
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
  #stepChild(step: string, status: string): Histogram.Internal<'step' | 'status'> {
    let byStatus = this.#stepChildren.get(step);
    if (byStatus === undefined) {
      byStatus = new Map<string, Histogram.Internal<'step' | 'status'>>();
      this.#stepChildren.set(step, byStatus);
    }
    let child = byStatus.get(status);
    if (child === undefined) {
      child = this.#stepDuration.labels(step, status);
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
}
