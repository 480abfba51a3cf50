import {
  ROOT_CONTEXT,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { TracesExporter } from './traces-exporters.js';
import { courierStepName, type OrderRecord } from './order-record.js';

/** The instrumentation scope of the service's spans. */
export const tracerName = 'order-pipeline';

/**
 * OrderTracer turns each settled order into a trace: an `order` span with one child span per
 * step (`step payment`, ...), and under the courier step a `courier wait` span for its wait
 * for a pool slot.
 *
 * Spans are written when the order settles, with the times measured while it ran, so nothing
 * is allocated for tracing while the steps run. A failed step's span has status ERROR and
 * `step.error_kind`; a canceled step's span has `step.cancel_reason` (the kind of the failure
 * that stopped the order) and a `canceled` event at the moment the order was aborted.
 */
export class OrderTracer {
  readonly #tracer: Tracer;
  readonly #timeOrigin: number;

  /** `timeOrigin` turns the observer's clock into epoch milliseconds. */
  constructor(tracer: Tracer, timeOrigin = performance.timeOrigin) {
    this.#tracer = tracer;
    this.#timeOrigin = timeOrigin;
  }

  recordOrder(record: OrderRecord): void {
    const { outcome } = record;
    const start = this.#timeOrigin + record.startedAt;
    const end = start + record.durationMs;
    const errorKind = outcome.error?.kind;
    const orderAttributes: Attributes = {
      'order.id': record.orderId,
      'order.outcome': outcome.status,
    };
    if (errorKind !== undefined) orderAttributes['order.error_kind'] = errorKind;
    const order = this.#tracer.startSpan(
      'order',
      { startTime: start, attributes: orderAttributes },
      ROOT_CONTEXT,
    );
    const canceledAt = record.canceledAtMs === undefined ? undefined : start + record.canceledAtMs;
    if (errorKind !== undefined) {
      order.setStatus({ code: SpanStatusCode.ERROR, message: errorKind });
      if (canceledAt !== undefined) {
        order.addEvent('canceled', { 'order.cancel_reason': errorKind }, canceledAt);
      }
    }
    const orderContext = trace.setSpan(ROOT_CONTEXT, order);
    for (const step of outcome.steps) {
      const span = this.#tracer.startSpan(
        `step ${step.name}`,
        { startTime: start, attributes: { 'step.name': step.name, 'step.status': step.status } },
        orderContext,
      );
      if (step.status === 'error') {
        span.setStatus({ code: SpanStatusCode.ERROR, message: step.detail ?? 'internal' });
        if (step.detail !== undefined) span.setAttribute('step.error_kind', step.detail);
      } else if (step.status === 'canceled' && errorKind !== undefined) {
        span.setAttribute('step.cancel_reason', errorKind);
        if (canceledAt !== undefined) {
          span.addEvent('canceled', { 'step.cancel_reason': errorKind }, canceledAt);
        }
      }
      if (step.name === courierStepName && record.courierWait !== undefined) {
        this.#recordWait(span, record);
      }
      span.end(start + step.durationMs);
    }
    order.end(end);
  }

  #recordWait(stepSpan: Span, record: OrderRecord): void {
    const wait = record.courierWait;
    if (wait === undefined) return;
    const waitMs = wait.settledAt - wait.startedAt;
    stepSpan.setAttribute('courier.wait_ms', waitMs);
    const span = this.#tracer.startSpan(
      'courier wait',
      {
        startTime: this.#timeOrigin + wait.startedAt,
        attributes: { 'courier.acquired': wait.acquired, 'courier.wait_ms': waitMs },
      },
      trace.setSpan(ROOT_CONTEXT, stepSpan),
    );
    span.end(this.#timeOrigin + wait.settledAt);
  }
}

/** Tracing is an {@link OrderTracer} and the provider behind it, to flush at shutdown. */
export interface Tracing {
  readonly tracer: OrderTracer;
  /** shutdown exports the spans still buffered and stops the exporter. */
  shutdown(): Promise<void>;
}

/**
 * createTracing builds tracing for `exporter`, or returns undefined for `none`. The OTLP
 * exporter and the batch processor read their settings from the standard `OTEL_*`
 * variables themselves (endpoint, headers, timeouts, batch sizes); the service name comes
 * from `OTEL_SERVICE_NAME`, else `order-pipeline`. Spans are exported in batches, off the
 * orders' path. The provider is not registered globally: only the service's own spans use it.
 */
export function createTracing(
  exporter: TracesExporter,
  env: NodeJS.ProcessEnv = process.env,
): Tracing | undefined {
  if (exporter === 'none') return undefined;
  const spanExporter: SpanExporter =
    exporter === 'otlp' ? new OTLPTraceExporter() : new ConsoleSpanExporter();
  const serviceName = env['OTEL_SERVICE_NAME']?.trim();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]:
        serviceName === undefined || serviceName === '' ? tracerName : serviceName,
    }),
    spanProcessors: [new BatchSpanProcessor(spanExporter)],
  });
  return {
    tracer: new OrderTracer(provider.getTracer(tracerName)),
    shutdown: () => provider.shutdown(),
  };
}
