import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postOrder } from '../http/support.js';
import { killServers, spawnServer, type ServerProcess } from './server-process.js';
import {
  killUpstreams,
  pipelineFile,
  removePipelineFiles,
  startUpstreams,
  type SeenRequest,
  type UpstreamName,
  type UpstreamsProcess,
} from './upstreams-process.js';

// One trace across services, against the service as `npm start` starts it with
// PIPELINE_FILE and the reference upstreams as a process of their own: with tracing on
// (the console exporter, whose spans the server prints), each upstream request carries the
// W3C traceparent of its step's span in the order's trace; with tracing off, none.

const upstreamNames: readonly UpstreamName[] = ['payment', 'vendor', 'courier'];

let upstreams: UpstreamsProcess;
let traced: { server: ServerProcess; port: number };
let untraced: { server: ServerProcess; port: number };

beforeAll(async () => {
  upstreams = await startUpstreams();
  const file = pipelineFile();
  const start = async (env: Record<string, string>) => {
    const server = spawnServer({ PIPELINE_FILE: file, ...upstreams.env, ...env });
    return { server, port: await server.listening() };
  };
  [traced, untraced] = await Promise.all([
    start({ OTEL_TRACES_EXPORTER: 'console', OTEL_BSP_SCHEDULE_DELAY: '50' }),
    start({}),
  ]);
}, 40_000);

afterAll(async () => {
  await killServers();
  await killUpstreams();
  removePipelineFiles();
});

/** sentFor runs order `orderId` on `port` and returns what each upstream saw of its step. */
async function sentFor(port: number, orderId: string): Promise<Map<UpstreamName, SeenRequest>> {
  const { status } = await postOrder(port, { order_id: orderId, amount: 10 });
  expect(status).toBe(200);
  const response = await fetch(`http://127.0.0.1:${port}/order/${orderId}`);
  const { run_id } = (await response.json()) as { run_id: string };
  const seen = new Map<UpstreamName, SeenRequest>();
  for (const upstream of upstreamNames) {
    const { requests } = await upstreams.ledger(upstream);
    const request = requests.find((r) => r.key === `${run_id}:${upstream}`);
    expect(request, upstream).toBeDefined();
    if (request !== undefined) seen.set(upstream, request);
  }
  return seen;
}

describe('one trace across services', () => {
  it("with tracing on, each upstream request carries traceparent: the order's trace, under its step's span", async () => {
    const seen = await sentFor(traced.port, 'traced-1');
    const contexts = upstreamNames.map((upstream) => {
      const traceparent = seen.get(upstream)?.traceparent ?? '';
      const parsed = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(traceparent);
      expect(parsed, `${upstream}: traceparent ${traceparent}`).not.toBeNull();
      return { upstream, traceId: parsed?.[1] ?? '', parentId: parsed?.[2] ?? '' };
    });
    const traceId = contexts[0]?.traceId ?? '';
    expect(new Set(contexts.map((context) => context.traceId))).toEqual(new Set([traceId]));
    expect(new Set(contexts.map((context) => context.parentId)).size).toBe(3);
    // The server's spans, as the console exporter prints them: the order span is the trace's
    // root, and each parent id is the span of the step that sent the request.
    await traced.server.waitForOutput(
      new RegExp(`traceId: '${traceId}',\\s*parentSpanContext: undefined,[^}]*?name: 'order'`),
    );
    for (const { upstream, parentId } of contexts) {
      await traced.server.waitForOutput(
        new RegExp(
          `traceId: '${traceId}',[\\s\\S]{0,400}?name: 'step ${upstream}',\\s*id: '${parentId}'`,
        ),
      );
    }
  });

  it('with tracing off, no upstream request carries a trace context', async () => {
    const seen = await sentFor(untraced.port, 'untraced-1');
    for (const upstream of upstreamNames) {
      expect(seen.get(upstream)?.traceparent, upstream).toBeUndefined();
    }
  });
});
