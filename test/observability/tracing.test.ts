import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanStatusCode } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Semaphore } from '../../src/core/semaphore.js';
import { observeService } from './observed-app.js';
import {
  createObservability,
  type ObservabilityOptions,
} from '../../src/observability/observability.js';
import { OrderTracer, createTracing } from '../../src/observability/tracing.js';
import { observedService } from '../../src/server.js';
import { httpSteps } from '../../src/upstream/http-steps.js';
import { loadPipelineFile } from '../../src/upstream/pipeline-file.js';
import { Upstreams } from '../../src/upstream/upstreams.js';
import { testServiceOptions } from '../helpers.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

afterEach(() => {
  exporter.reset();
});

function tracedService(courierPool = new Semaphore(1)) {
  return observeService({
    metrics: false,
    dashboard: false,
    courierPool,
    tracing: {
      tracer: new OrderTracer(provider.getTracer('test')),
      shutdown: () => Promise.resolve(),
    },
  });
}

function byName(spans: readonly ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((span) => span.name === name);
  expect(found, `spans named ${name}`).toHaveLength(1);
  return found[0]!;
}

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;
const idOf = (span: ReadableSpan): string => span.spanContext().spanId;
const millis = (time: readonly [number, number]): number => time[0] * 1000 + time[1] / 1e6;

describe('traces', () => {
  it('a canceled order is an order span with a span per step and the courier wait under its step', async () => {
    const courierPool = new Semaphore(1);
    // The only courier slot is taken, so the order's courier step waits until it is canceled.
    const heldSlot = await courierPool.acquire();
    const { service } = tracedService(courierPool);

    const outcome = await service.pipeline.run({
      id: 'o-traced',
      amount: 1,
      failStep: 'payment',
      delayMs: { payment: 5, vendor: 5000, courier: 5000 },
    });
    heldSlot.release();
    expect(outcome.error?.kind).toBe('payment_declined');

    const spans = exporter.getFinishedSpans();
    expect(spans.map((span) => span.name).sort()).toEqual([
      'courier wait',
      'order',
      'step courier',
      'step payment',
      'step vendor',
    ]);
    const order = byName(spans, 'order');
    expect(parentOf(order)).toBeUndefined();
    expect(order.attributes).toMatchObject({
      'order.id': 'o-traced',
      'order.outcome': 'error',
      'order.error_kind': 'payment_declined',
    });
    expect(order.status.code).toBe(SpanStatusCode.ERROR);
    const orderCanceled = order.events.find((event) => event.name === 'canceled');
    expect(orderCanceled?.attributes).toEqual({ 'order.cancel_reason': 'payment_declined' });

    const payment = byName(spans, 'step payment');
    expect(parentOf(payment)).toBe(idOf(order));
    expect(payment.status.code).toBe(SpanStatusCode.ERROR);
    expect(payment.attributes).toMatchObject({
      'step.status': 'error',
      'step.error_kind': 'payment_declined',
    });

    for (const name of ['step vendor', 'step courier']) {
      const step = byName(spans, name);
      expect(parentOf(step), name).toBe(idOf(order));
      expect(step.status.code, name).toBe(SpanStatusCode.UNSET);
      expect(step.attributes, name).toMatchObject({
        'step.status': 'canceled',
        'step.cancel_reason': 'payment_declined',
      });
      const canceled = step.events.find((event) => event.name === 'canceled');
      expect(canceled, name).toBeDefined();
      // The abort came when the payment failed: not before it, and before the step ended.
      expect(millis(canceled!.time)).toBeGreaterThanOrEqual(millis(payment.endTime) - 0.001);
      expect(millis(canceled!.time)).toBeLessThanOrEqual(millis(step.endTime) + 0.001);
    }

    const wait = byName(spans, 'courier wait');
    expect(parentOf(wait)).toBe(idOf(byName(spans, 'step courier')));
    expect(wait.attributes['courier.acquired']).toBe(false);
    expect(wait.attributes['courier.wait_ms']).toBeGreaterThan(0);
    // Children lie within their parents.
    expect(millis(order.startTime)).toBeLessThanOrEqual(millis(wait.startTime));
    expect(millis(wait.endTime)).toBeLessThanOrEqual(millis(order.endTime));
  });

  it('a successful order has no error status and no cancel event', async () => {
    const { service } = tracedService();
    const outcome = await service.pipeline.run({
      id: 'o-ok',
      amount: 1,
      delayMs: { payment: 0, vendor: 0, courier: 0 },
    });
    expect(outcome.status).toBe('ok');
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(5);
    for (const span of spans) {
      expect(span.status.code, span.name).toBe(SpanStatusCode.UNSET);
      expect(span.events, span.name).toEqual([]);
    }
    expect(byName(spans, 'courier wait').attributes['courier.acquired']).toBe(true);
  });

  it('is off by default and follows the standard OTEL_* variables', () => {
    const table: [NodeJS.ProcessEnv, string][] = [
      [{}, 'none'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, 'otlp'],
      [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }, 'otlp'],
      [{ OTEL_TRACES_EXPORTER: 'otlp' }, 'otlp'],
      [{ OTEL_TRACES_EXPORTER: 'console' }, 'console'],
      [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' }, 'none'],
      [{ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }, 'none'],
    ];
    for (const [env, want] of table) {
      expect(loadConfig(env).tracesExporter, JSON.stringify(env)).toBe(want);
    }
    expect(() => loadConfig({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/OTEL_TRACES_EXPORTER/);
  });

  it('createTracing builds nothing for none, and an exporter that shuts down for otlp', async () => {
    expect(createTracing('none')).toBeUndefined();
    const tracing = createTracing('otlp', { OTEL_SERVICE_NAME: 'test' });
    expect(tracing).toBeDefined();
    await tracing!.shutdown();
  });
});

describe('one trace across services', () => {
  /**
   * headersSentUpstream runs one order through a service whose one step, payment, calls an
   * upstream on loopback, watched as `observabilityOptions` say, and resolves with the
   * headers of each request the upstream received.
   */
  async function headersSentUpstream(
    observabilityOptions: ObservabilityOptions,
  ): Promise<IncomingHttpHeaders[]> {
    const received: IncomingHttpHeaders[] = [];
    const upstream = createServer((request, response) => {
      received.push(request.headers);
      request.resume();
      response.statusCode = 201;
      response.end();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const dir = mkdtempSync(join(tmpdir(), 'tracing-test-'));
    const file = join(dir, 'pipeline.json');
    writeFileSync(
      file,
      JSON.stringify({ steps: [{ name: 'payment', request: { url: `${origin}/charges` } }] }),
    );
    const upstreams = new Upstreams(2);
    const observability = createObservability({ dashboard: false, ...observabilityOptions });
    const service = observedService(
      observability,
      testServiceOptions({
        steps: (courierPool) =>
          httpSteps({
            plan: loadPipelineFile(file, {}),
            upstreams,
            courierPool,
            traceHeaders: observability.traceHeaders,
          }),
      }),
    );
    try {
      const outcome = await service.pipeline.run({ id: 'o-upstream', amount: 1 });
      expect(outcome.status).toBe('ok');
      return received;
    } finally {
      await service.close();
      await observability.close();
      await upstreams.close();
      upstream.closeAllConnections();
      await new Promise((resolve) => upstream.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it("an HTTP step sends traceparent: the order's trace, under the step's span", async () => {
    const received = await headersSentUpstream({
      tracing: {
        tracer: new OrderTracer(provider.getTracer('test')),
        shutdown: () => Promise.resolve(),
      },
    });
    expect(received).toHaveLength(1);
    const traceparent = String(received[0]?.['traceparent']);
    const parsed = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(traceparent);
    expect(parsed, `traceparent ${traceparent}`).not.toBeNull();
    const spans = exporter.getFinishedSpans();
    const order = byName(spans, 'order');
    const payment = byName(spans, 'step payment');
    expect(parsed?.[1]).toBe(order.spanContext().traceId);
    expect(parsed?.[2]).toBe(idOf(payment));
    expect(parentOf(payment)).toBe(idOf(order));
    expect(payment.attributes['step.status']).toBe('ok');
  });

  it('with tracing off, nothing is sent', async () => {
    const received = await headersSentUpstream({});
    expect(received).toHaveLength(1);
    expect(received[0]).not.toHaveProperty('traceparent');
    expect(received[0]).not.toHaveProperty('tracestate');
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});
