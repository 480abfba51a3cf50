import type { Config } from '../config.js';
import type { Cancellation } from '../core/cancellation.js';
import type { Order } from '../order/order.js';
import {
  courierPoolOf,
  createOrderService,
  type OrderServiceOptions,
} from '../order/order-service.js';
import type { OrderOutcome, PipelineObserver } from '../order/pipeline.js';
import { OrderMetrics } from './metrics.js';
import { ObservedPool, type PoolWait } from './observed-pool.js';
import type { OrderRecord } from './order-record.js';
import { RecentOrders } from './recent-orders.js';
import { createTracing, type Tracing } from './tracing.js';

export interface ObservabilityOptions {
  /** Prometheus metrics (`GET /metrics`); on by default. */
  metrics?: boolean;
  /** Default process metrics too (CPU, memory, event loop, GC); off by default. */
  defaultMetrics?: boolean;
  /** The dashboard and its timeline of recent orders; on by default. */
  dashboard?: boolean;
  /** How many recent orders the dashboard keeps. */
  recentOrders?: number;
  /** Traces of each order; none by default. Shut down by {@link Observability.close}. */
  tracing?: Tracing | undefined;
  /** Told about an observer that threw; defaults to a process warning. */
  onError?: (error: unknown) => void;
}

/**
 * Observability is what watches an order service: its metrics, the recent orders shown by
 * the dashboard, and its traces. A part that is off is undefined.
 */
export interface Observability {
  readonly metrics: OrderMetrics | undefined;
  readonly recentOrders: RecentOrders | undefined;
  /** close flushes and stops what needs it (the trace exporter). It never rejects. */
  close(): Promise<void>;
}

export interface ObservedOrderService {
  /** The service exactly as {@link createOrderService} builds it. */
  service: ReturnType<typeof createOrderService>;
  observability: Observability;
}

/** What is learned about an order while it runs. */
interface OrderWatch {
  canceledAt: number | undefined;
  courierWait: PoolWait | undefined;
}

/**
 * observeOrderService builds an order service (as {@link createOrderService} does) with
 * observability around it: a pipeline observer that feeds the metrics, the dashboard and the
 * traces when each order settles, and a courier pool wrapped to time each wait for a slot.
 *
 * With everything off it builds the plain service: no observer, no wrapper, no cost. With
 * only metrics on, an order costs a few counter and histogram updates when it settles. The
 * dashboard and traces also need the moment an order was aborted and its courier wait, so
 * they add one abort listener and one WeakMap entry per order, both gone when it settles.
 */
export function observeOrderService(
  options: OrderServiceOptions & ObservabilityOptions = {},
): ObservedOrderService {
  const {
    metrics: metricsOn = true,
    defaultMetrics = false,
    dashboard = true,
    recentOrders: recentCapacity,
    tracing,
    onError = warn,
    ...serviceOptions
  } = options;
  const recentOrders = dashboard ? new RecentOrders(recentCapacity) : undefined;
  const tracer = tracing?.tracer;
  const close = async (): Promise<void> => {
    await tracing?.shutdown().catch(onError);
  };
  if (!metricsOn && recentOrders === undefined && tracer === undefined) {
    return {
      service: createOrderService(serviceOptions),
      observability: { metrics: undefined, recentOrders: undefined, close },
    };
  }

  const now = performance.now.bind(performance);
  const basePool = courierPoolOf(serviceOptions);
  // Assigned once the service exists: the metrics read its tracker and step names.
  let metrics: OrderMetrics | undefined;
  const watchDetail = recentOrders !== undefined || tracer !== undefined;
  const watches = new WeakMap<Cancellation, OrderWatch>();

  const courierPool = new ObservedPool(
    basePool,
    (wait, cancel) => {
      metrics?.recordCourierWait(wait);
      if (cancel === undefined) return;
      const watch = watches.get(cancel);
      if (watch !== undefined) watch.courierWait = wait;
    },
    now,
  );

  const record = (orderRecord: OrderRecord): void => {
    try {
      metrics?.recordOrder(orderRecord);
      recentOrders?.record(orderRecord);
      tracer?.recordOrder(orderRecord);
    } catch (error) {
      // An observer must not change an order's outcome: report the fault and carry on.
      onError(error);
    }
  };

  const observer: PipelineObserver<Order> = {
    // The pipeline's start is the origin of its steps' durations: reading the clock again
    // here would shift every step against the abort and the courier wait.
    orderStarted(order, cancel, startedAt) {
      if (!watchDetail) {
        return (outcome) => {
          record(toRecord(order, startedAt, now(), outcome, undefined));
        };
      }
      const watch: OrderWatch = {
        canceledAt: cancel.aborted ? startedAt : undefined,
        courierWait: undefined,
      };
      watches.set(cancel, watch);
      const stopWatching = cancel.onAbort(() => {
        watch.canceledAt = now();
      });
      return (outcome) => {
        stopWatching();
        watches.delete(cancel);
        record(toRecord(order, startedAt, now(), outcome, watch));
      };
    },
  };

  const service = createOrderService({ ...serviceOptions, courierPool, observer });
  if (metricsOn) {
    metrics = new OrderMetrics({
      courierPool: basePool,
      stepsInFlight: () => service.tracker.active,
      admission: service.admission,
      stepNames: service.pipeline.stepNames,
      defaultMetrics,
    });
  }
  return { service, observability: { metrics, recentOrders, close } };
}

/**
 * observabilityOptions turns the configuration into {@link ObservabilityOptions} for a
 * server: metrics with the default process metrics, the dashboard, and tracing when the
 * OTEL_* variables ask for it.
 */
export function observabilityOptions(
  config: Pick<Config, 'metricsEnabled' | 'dashboardEnabled' | 'tracesExporter'>,
): ObservabilityOptions {
  return {
    metrics: config.metricsEnabled,
    defaultMetrics: config.metricsEnabled,
    dashboard: config.dashboardEnabled,
    tracing: createTracing(config.tracesExporter),
  };
}

function toRecord(
  order: Order,
  startedAt: number,
  settledAt: number,
  outcome: OrderOutcome,
  watch: OrderWatch | undefined,
): OrderRecord {
  const canceledAt = outcome.status === 'error' ? watch?.canceledAt : undefined;
  return {
    orderId: order.id,
    startedAt,
    durationMs: settledAt - startedAt,
    outcome,
    canceledAtMs: canceledAt === undefined ? undefined : canceledAt - startedAt,
    courierWait: watch?.courierWait,
  };
}

function warn(error: unknown): void {
  process.emitWarning(error instanceof Error ? error : new Error(String(error)), {
    code: 'ORDER_PIPELINE_OBSERVER',
  });
}
