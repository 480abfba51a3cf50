import type { Cancellation } from '../core/cancellation.js';
import type { Pool } from '../core/semaphore.js';
import type { LedgerHooks } from '../ledger/ledger-options.js';
import type { Order } from '../order/order.js';
import type { OrderOutcome, PipelineObserver } from '../order/pipeline.js';
import { OrderMetrics, type AdmissionView } from './metrics.js';
import { ObservedPool, type PoolWait } from './observed-pool.js';
import type { OrderRecord } from './order-record.js';
import { RecentOrders } from './recent-orders.js';
import type { OrderTrace, Tracing } from './tracing.js';

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

/** What the metrics read of a running service at each scrape. */
export interface ServiceView {
  readonly courierPool: Pool;
  readonly tracker: { readonly active: number };
  readonly admission: AdmissionView;
  readonly stepNames: readonly string[];
}

/**
 * Observability is what watches an order service: a pipeline observer, a courier pool
 * wrapper that times each wait, hooks for the ledger, the metrics, the recent orders shown by
 * the dashboard, and the traces. It builds nothing of the service: the composition root hands
 * {@link observer}, {@link observePool} and {@link ledgerHooks} to the service, then the
 * service to {@link watch}. A part that is off is undefined, and costs nothing.
 */
export interface Observability {
  /** Watches every order; undefined when nothing needs it. */
  readonly observer: PipelineObserver<Order> | undefined;
  /** The courier pool the service should use: `pool` itself, or wrapped to time each wait. */
  observePool(pool: Pool): Pool;
  /** Feeds the ledger's compensations, operator flags and recoveries to the metrics. */
  readonly ledgerHooks: LedgerHooks | undefined;
  /**
   * With tracing on, traceHeaders is the W3C trace context (`traceparent`) a step of a running
   * order sends with its requests, so that the upstream joins the order's trace under the
   * step's span: the order is found by the cancellation its steps share, and a cancellation of
   * no running order has none (undefined). Undefined when tracing is off, so a step pays
   * nothing for it.
   */
  readonly traceHeaders:
    | ((cancel: Cancellation, step: string) => Readonly<Record<string, string>> | undefined)
    | undefined;
  /** The metrics, once {@link watch} has been called with metrics on. */
  readonly metrics: OrderMetrics | undefined;
  readonly recentOrders: RecentOrders | undefined;
  /**
   * watch starts the metrics of `service` (its gauges are read at each scrape) and the
   * dashboard's count of its refusals. Once only: later calls do nothing.
   */
  watch(service: ServiceView): void;
  /**
   * close flushes and stops what needs it (the trace exporter, the dashboard's reading of
   * refusals). It never rejects.
   */
  close(): Promise<void>;
}

/** What is learned about an order while it runs. */
interface OrderWatch {
  canceledAt: number | undefined;
  courierWait: PoolWait | undefined;
  /** The order's trace, live from its start, when tracing is on. */
  trace: OrderTrace | undefined;
}

/**
 * createObservability builds what `options` turns on. With only metrics on, an order costs a
 * few counter and histogram updates when it settles. The dashboard and traces also need the
 * moment an order was aborted and its courier wait, so they add one abort listener and one
 * WeakMap entry per order, both gone when it settles.
 */
export function createObservability(options: ObservabilityOptions = {}): Observability {
  const {
    metrics: metricsOn = true,
    defaultMetrics = false,
    dashboard = true,
    recentOrders: recentCapacity,
    tracing,
    onError = warn,
  } = options;
  const recentOrders = dashboard ? new RecentOrders(recentCapacity) : undefined;
  const tracer = tracing?.tracer;
  const now = performance.now.bind(performance);
  const watchDetail = recentOrders !== undefined || tracer !== undefined;
  const watches = new WeakMap<Cancellation, OrderWatch>();
  let metrics: OrderMetrics | undefined;
  let watched = false;

  const record = (orderRecord: OrderRecord, orderTrace?: OrderTrace): void => {
    try {
      metrics?.recordOrder(orderRecord);
      recentOrders?.record(orderRecord);
      tracer?.recordOrder(orderRecord, orderTrace);
    } catch (error) {
      // An observer must not change an order's outcome: report the fault and carry on.
      onError(error);
    }
  };

  const observer: PipelineObserver<Order> | undefined =
    !metricsOn && !watchDetail
      ? undefined
      : {
          // The pipeline's start is the origin of its steps' durations: reading the clock
          // again here would shift every step against the abort and the courier wait.
          orderStarted(order, cancel, startedAt) {
            if (!watchDetail) {
              return (outcome) => {
                record(toRecord(order, startedAt, now(), outcome, undefined));
              };
            }
            const watch: OrderWatch = {
              canceledAt: cancel.aborted ? startedAt : undefined,
              courierWait: undefined,
              trace: tracer?.startOrder(order.id, startedAt),
            };
            watches.set(cancel, watch);
            const stopWatching = cancel.onAbort(() => {
              watch.canceledAt = now();
            });
            return (outcome) => {
              stopWatching();
              watches.delete(cancel);
              record(toRecord(order, startedAt, now(), outcome, watch), watch.trace);
            };
          },
        };

  const observePool = (pool: Pool): Pool =>
    !metricsOn && !watchDetail
      ? pool
      : new ObservedPool(
          pool,
          (wait, cancel) => {
            metrics?.recordCourierWait(wait);
            if (cancel === undefined) return;
            const watch = watches.get(cancel);
            if (watch !== undefined) watch.courierWait = wait;
          },
          now,
        );

  const ledgerHooks: LedgerHooks | undefined = metricsOn
    ? {
        compensationAttempted: (step, result) => metrics?.recordCompensation(step, result),
        operatorFlagged: (_orderId, step) => metrics?.recordOperatorFlag(step),
        orderRecovered: () => metrics?.recordRecovery(),
      }
    : undefined;

  const traceHeaders =
    tracer === undefined
      ? undefined
      : (cancel: Cancellation, step: string): Readonly<Record<string, string>> | undefined =>
          watches.get(cancel)?.trace?.headersFor(step);

  return {
    observer,
    observePool,
    ledgerHooks,
    traceHeaders,
    get metrics() {
      return metrics;
    },
    recentOrders,
    watch(service) {
      if (watched) return;
      watched = true;
      recentOrders?.watchRefusals(() => service.admission.refused);
      if (!metricsOn) return;
      metrics = new OrderMetrics({
        courierPool: service.courierPool,
        stepsInFlight: () => service.tracker.active,
        admission: service.admission,
        stepNames: service.stepNames,
        defaultMetrics,
      });
    },
    async close() {
      recentOrders?.close();
      await tracing?.shutdown().catch(onError);
    },
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
