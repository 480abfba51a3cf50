import {
  ROOT_CONTEXT,
  SpanStatusCode,
  defaultTextMapSetter,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
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
 * OrderTracer turns each order into a trace: an `order` span with one child span per step
 * (`step payment`, ...), and under the courier step a `courier wait` span for its wait for a
 * pool slot.
 *
 * {@link startOrder} starts the order's span when the order starts, so that its trace is live
 * while the steps run: a step that calls another service sends the trace context of its own
 * span ({@link OrderTrace.headersFor}), and the callee's spans join the order's trace. The
 * rest is written when the order settles, with the times measured while it ran. A failed
 * step's span has status ERROR and `step.error_kind`; a canceled step's span has
 * `step.cancel_reason` (the kind of the failure that stopped the order) and a `canceled` event
 * at the moment the order was aborted.
 */
export class OrderTracer {
  readonly #tracer: Tracer;
  readonly #timeOrigin: number;

  /** `timeOrigin` turns the observer's clock into epoch milliseconds. */
  constructor(tracer: Tracer, timeOrigin = performance.timeOrigin) {
    this.#tracer = tracer;
    this.#timeOrigin = timeOrigin;
  }

  /**
   * startOrder starts the `order` span of order `orderId`, started at `startedAt` on the
   * observer's clock, in a trace of its own. Its spans end when {@link recordOrder} is given
   * the returned trace.
   */
  startOrder(orderId: string, startedAt: number): OrderTrace {
    const span = this.#tracer.startSpan(
      'order',
      { startTime: this.#timeOrigin + startedAt, attributes: { 'order.id': orderId } },
      ROOT_CONTEXT,
    );
    return new OrderTrace(this.#tracer, span, this.#timeOrigin + startedAt);
  }

  /**
   * recordOrder writes the settled order `record` and ends its spans: those of `live`, the
   * trace {@link startOrder} started for it, or new ones when there is none.
   */
  recordOrder(record: OrderRecord, live?: OrderTrace): void {
    const { outcome } = record;
    const orderTrace = live ?? this.startOrder(record.orderId, record.startedAt);
    const start = orderTrace.startTime;
    const end = start + record.durationMs;
    const errorKind = outcome.error?.kind;
    const order = orderTrace.span;
    order.setAttribute('order.outcome', outcome.status);
    if (errorKind !== undefined) order.setAttribute('order.error_kind', errorKind);
    const canceledAt = record.canceledAtMs === undefined ? undefined : start + record.canceledAtMs;
    if (errorKind !== undefined) {
      order.setStatus({ code: SpanStatusCode.ERROR, message: errorKind });
      if (canceledAt !== undefined) {
        order.addEvent('canceled', { 'order.cancel_reason': errorKind }, canceledAt);
      }
    }
    for (const step of outcome.steps) {
      const span = orderTrace.stepSpan(step.name);
      span.setAttribute('step.status', step.status);
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

const propagator = new W3CTraceContextPropagator();

/**
 * OrderTrace is the live trace of one order: its `order` span, started with the order, and
 * the span of each step, started (at the order's start, when the steps start) the first time
 * it is asked for. {@link OrderTracer.recordOrder} ends them.
 */
export class OrderTrace {
  readonly #tracer: Tracer;
  readonly #orderContext: Context;
  readonly #steps = new Map<string, { span: Span; headers: Readonly<Record<string, string>> }>();

  constructor(
    tracer: Tracer,
    /** The `order` span. */
    readonly span: Span,
    /** The order's start, in epoch milliseconds. */
    readonly startTime: number,
  ) {
    this.#tracer = tracer;
    this.#orderContext = trace.setSpan(ROOT_CONTEXT, span);
  }

  /**
   * headersFor is the W3C trace context of `step`'s span (`traceparent`, and `tracestate`
   * when there is one), the headers that make a request the step sends part of the order's
   * trace. The same object for every request of the step.
   */
  headersFor(step: string): Readonly<Record<string, string>> {
    return this.#step(step).headers;
  }

  /** stepSpan is the span of `step`, started if it was not yet. */
  stepSpan(step: string): Span {
    return this.#step(step).span;
  }

  #step(step: string): { span: Span; headers: Readonly<Record<string, string>> } {
    let found = this.#steps.get(step);
    if (found === undefined) {
      const span = this.#tracer.startSpan(
        `step ${step}`,
        { startTime: this.startTime, attributes: { 'step.name': step } },
        this.#orderContext,
      );
      const headers: Record<string, string> = {};
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, defaultTextMapSetter);
      found = { span, headers };
      this.#steps.set(step, found);
    }
    return found;
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
