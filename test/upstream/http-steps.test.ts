import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { Semaphore } from '../../src/core/semaphore.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import { httpSteps, type HttpStepsOptions } from '../../src/upstream/http-steps.js';
import { loadPipelineFile } from '../../src/upstream/pipeline-file.js';
import { Upstreams } from '../../src/upstream/upstreams.js';

// One HTTP step against an in-process upstream whose answers each test scripts: what reaches
// the upstream, when its socket closes, and that nothing is left listening afterwards.

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

let server: Server;
let origin: string;
let handle: Handler = (_request, response) => {
  response.statusCode = 201;
  response.end();
};
const seenKeys: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'http-steps-test-'));
/** Every step's pools, closed after each test. */
const opened: Upstreams[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    seenKeys.push(String(request.headers['idempotency-key']));
    request.resume();
    handle(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  seenKeys.length = 0;
  await Promise.all(opened.splice(0).map((upstreams) => upstreams.close()));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** paymentStep is a payment step calling the test's upstream, with retries but no jitter. */
function paymentStep(connections = 4): Step<Order> {
  return stepOf(
    {
      name: 'payment',
      request: { url: `${origin}/charges`, body: { amount: '{{amount}}' } },
      timeout_ms: 5000,
      retry: { attempts: 3, initial_delay_ms: 1, jitter: false },
      compensation: { url: `${origin}/charges/{{step_key}}/refund`, method: 'POST' },
    },
    connections,
  );
}

/**
 * chargeStep is a payment step without compensation calling the test's upstream, each attempt
 * timed out after `timeoutMs`, retried as `retry` says without jitter.
 */
function chargeStep(
  timeoutMs: number,
  retry: { attempts: number; initial_delay_ms: number },
): Step<Order> {
  return stepOf({
    name: 'payment',
    request: { url: `${origin}/charges`, body: { amount: '{{amount}}' } },
    timeout_ms: timeoutMs,
    retry: { ...retry, jitter: false },
  });
}

/** stepOf is the step a pipeline file with the one step `spec` declares. */
function stepOf(
  spec: Record<string, unknown>,
  connections = 4,
  traceHeaders?: HttpStepsOptions['traceHeaders'],
): Step<Order> {
  const path = join(dir, 'pipeline.json');
  writeFileSync(path, JSON.stringify({ steps: [spec] }));
  const plan = loadPipelineFile(path, {});
  const upstreams = new Upstreams(connections);
  opened.push(upstreams);
  const [step] = httpSteps({ plan, upstreams, courierPool: new Semaphore(1), traceHeaders });
  if (step === undefined) throw new Error('no step');
  return step;
}

/** within resolves with `promise`, or rejects after `ms`, naming `what` did not happen. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} not within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** orderErrorOf is the OrderError `running` rejected with, its cause's message beside it. */
async function orderErrorOf(
  running: Promise<unknown>,
): Promise<{ kind: string; cause: string; effectUnknown: boolean }> {
  try {
    await running;
  } catch (error) {
    if (!(error instanceof OrderError)) throw error;
    const { cause } = error;
    return {
      kind: error.kind,
      cause: cause instanceof Error ? cause.message : String(cause),
      effectUnknown: error.effectUnknown,
    };
  }
  throw new Error('resolved');
}

const order: Order = { id: 'o-1', amount: 10 };
const info = { runId: 'run-1' };

describe('an HTTP step', () => {
  it('retries a transient status with the same key and succeeds; no listener is left', async () => {
    let calls = 0;
    handle = (_request, response) => {
      response.statusCode = ++calls === 1 ? 503 : 201;
      response.end();
    };
    const step = paymentStep();
    const cancel = new CancelSource();
    await step.run(order, cancel, info);
    expect(seenKeys).toStrictEqual(['run-1:payment', 'run-1:payment']);
    expect(cancel.listenerCount).toBe(0);
  });

  it('fails unavailable once its attempts are answered 503; answered, nothing is left to undo', async () => {
    handle = (_request, response) => {
      response.statusCode = 503;
      response.end();
    };
    const failure = await orderErrorOf(paymentStep().run(order, new CancelSource(), info));
    expect(failure).toMatchObject({ kind: 'unavailable', effectUnknown: false });
    expect(seenKeys).toStrictEqual(['run-1:payment', 'run-1:payment', 'run-1:payment']);
  });

  it('aborted between attempts after one went unanswered, it resolves: done, to be undone', async () => {
    let calls = 0;
    let firstClosed: Promise<void> | undefined;
    handle = (request, response) => {
      // The first attempt is never answered; a second would be.
      if (++calls === 1) {
        firstClosed = new Promise((resolve) => request.socket.once('close', resolve));
      } else {
        response.end();
      }
    };
    const step = chargeStep(50, { attempts: 3, initial_delay_ms: 10_000 });
    const cancel = new CancelSource();
    const running = step.run(order, cancel, info);
    // The first attempt timed out (its socket closed): the step now waits 10 s to retry.
    await expect.poll(() => firstClosed).toBeDefined();
    await firstClosed;
    cancel.abort(new Error('order aborted'));
    await expect(within(running, 2000, 'the step settled')).resolves.toBeUndefined();
    expect(calls).toBe(1);
    expect(cancel.listenerCount).toBe(0);
  });

  it('a refusal after an unanswered attempt fails with its kind, the effect still unknown', async () => {
    let calls = 0;
    handle = (_request, response) => {
      // The first attempt is never answered (it may be applied); the retry is refused.
      if (++calls === 1) return;
      response.statusCode = 402;
      response.end();
    };
    const step = chargeStep(50, { attempts: 3, initial_delay_ms: 1 });
    const failure = await orderErrorOf(step.run(order, new CancelSource(), info));
    expect(failure).toMatchObject({ kind: 'payment_declined', effectUnknown: true });
    expect(calls).toBe(2);
  });

  it('fails a refusal at once with its kind, never retried', async () => {
    handle = (_request, response) => {
      response.statusCode = 402;
      response.end();
    };
    const step = paymentStep();
    const cancel = new CancelSource();
    await expect(step.run(order, cancel, info)).rejects.toMatchObject({
      kind: 'payment_declined',
    });
    expect(seenKeys).toStrictEqual(['run-1:payment']);
    expect(cancel.listenerCount).toBe(0);
  });

  it('an abort closes the socket of the request in flight, and the step counts as done', async () => {
    let arrived!: () => void;
    const requestArrived = new Promise<void>((resolve) => (arrived = resolve));
    let closed!: () => void;
    const socketClosed = new Promise<void>((resolve) => (closed = resolve));
    handle = (_request, response) => {
      response.once('close', closed);
      arrived();
      // Never answered: only the client's abort ends it.
    };
    const step = paymentStep();
    const cancel = new CancelSource();
    const running = step.run(order, cancel, info);
    await requestArrived;
    cancel.abort(new OrderError('vendor_unavailable', 'a sibling failed'));
    // Whether the upstream applied it is unknown: done, so that the saga undoes it.
    await expect(running).resolves.toBeUndefined();
    await socketClosed;
    expect(cancel.listenerCount).toBe(0);
  });

  it('starts no attempt with less than 20 ms left before the deadline', async () => {
    const step = paymentStep();
    const cancel = new CancelSource();
    await expect(
      step.run({ ...order, deadlineAt: Date.now() + 5 }, cancel, info),
    ).rejects.toMatchObject({ kind: 'timeout' });
    expect(seenKeys).toStrictEqual([]);
  });

  it('compensates with its own key; "nothing to undo" (404) is done, 503 and 400 are not', async () => {
    const step = paymentStep();
    const compensate = (attempt: number): Promise<unknown> => {
      if (step.compensate === undefined) throw new Error('no compensation');
      return step.compensate(order, new CancelSource(), attempt, info);
    };
    let status = 404;
    const paths: string[] = [];
    handle = (request, response) => {
      paths.push(request.url ?? '');
      response.statusCode = status;
      response.end();
    };
    await compensate(1);
    status = 503;
    await expect(compensate(2)).rejects.toMatchObject({ kind: 'unavailable' });
    status = 400;
    await expect(compensate(3)).rejects.toMatchObject({ kind: 'internal' });
    expect(seenKeys).toStrictEqual(Array(3).fill('run-1:payment:undo'));
    expect(paths).toStrictEqual(Array(3).fill('/charges/run-1%3Apayment/refund'));
  });

  it('sends what the file declares: the fixed parts as they are, the placeholders per order', async () => {
    const seen: { url: string; headers: string[]; body: string }[] = [];
    handle = (request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => (body += chunk));
      request.on('end', () => {
        const headers: string[] = [];
        for (let i = 0; i < request.rawHeaders.length; i += 2) {
          const name = (request.rawHeaders[i] ?? '').toLowerCase();
          if (!['host', 'connection', 'content-length'].includes(name)) {
            headers.push(`${name}: ${request.rawHeaders[i + 1] ?? ''}`);
          }
        }
        seen.push({ url: request.url ?? '', headers: headers.sort(), body });
        response.statusCode = 201;
        response.end();
      });
    };
    const templated = stepOf(
      {
        name: 'payment',
        request: {
          url: `${origin}/charges?order={{order_id}}`,
          headers: {
            Authorization: 'Bearer t',
            'X-Order': 'order {{order_id}}',
            'Idempotency-Key': 'the file cannot set it',
          },
          body: { amount: '{{amount}}', fixed: 'yes' },
        },
      },
      4,
      (_cancel, step) => ({ traceparent: `00-trace-of-${step}` }),
    );
    await templated.run({ id: 'o/1', amount: 10 }, new CancelSource(), info);
    await templated.run({ id: 'o/2', amount: 20 }, new CancelSource(), { runId: 'run-2' });
    const fixed = stepOf({
      name: 'vendor',
      request: {
        method: 'PUT',
        url: `${origin}/fixed`,
        headers: { 'Content-Type': 'application/vnd.test+json' },
        body: { note: 'fixed', list: [1, null] },
      },
    });
    await fixed.run({ id: 'o/3', amount: 30 }, new CancelSource(), { runId: 'run-3' });
    await fixed.run({ id: 'o/4', amount: 40 }, new CancelSource(), { runId: 'run-4' });
    expect(seen).toStrictEqual([
      {
        url: '/charges?order=o%2F1',
        headers: [
          'authorization: Bearer t',
          'content-type: application/json',
          'idempotency-key: run-1:payment',
          'traceparent: 00-trace-of-payment',
          'x-order: order o/1',
        ],
        body: '{"amount":10,"fixed":"yes"}',
      },
      {
        url: '/charges?order=o%2F2',
        headers: [
          'authorization: Bearer t',
          'content-type: application/json',
          'idempotency-key: run-2:payment',
          'traceparent: 00-trace-of-payment',
          'x-order: order o/2',
        ],
        body: '{"amount":20,"fixed":"yes"}',
      },
      ...['run-3', 'run-4'].map((runId) => ({
        url: '/fixed',
        headers: ['content-type: application/vnd.test+json', `idempotency-key: ${runId}:vendor`],
        body: '{"note":"fixed","list":[1,null]}',
      })),
    ]);
  });

  it.each([
    ['with its length', true],
    ['chunked', false],
  ])(
    'an answer longer than 1 MiB (%s) is its status: the rest is not read, its socket is closed',
    async (_, withLength) => {
      let closed!: () => void;
      const socketClosed = new Promise<void>((resolve) => (closed = resolve));
      handle = (request, response) => {
        request.socket.once('close', closed);
        response.statusCode = 201;
        const chunk = Buffer.alloc(64 * 1024, 'x');
        if (withLength) response.setHeader('content-length', 40 * chunk.length);
        for (let i = 0; i < 40; i++) response.write(chunk);
        response.end();
      };
      const step = paymentStep();
      const cancel = new CancelSource();
      await step.run(order, cancel, info);
      await within(socketClosed, 2000, 'the socket closed');
      expect(seenKeys).toStrictEqual(['run-1:payment']);
      expect(cancel.listenerCount).toBe(0);
    },
  );

  it('an attempt unanswered within its timeout is aborted, its socket closed, and retried', async () => {
    const sockets: Promise<void>[] = [];
    handle = (request) => {
      sockets.push(new Promise((resolve) => request.socket.once('close', resolve)));
      // Never answered.
    };
    const step = chargeStep(100, { attempts: 2, initial_delay_ms: 1 });
    const cancel = new CancelSource();
    expect(await orderErrorOf(step.run(order, cancel, info))).toStrictEqual({
      kind: 'unavailable',
      cause: 'no answer within 100 ms',
      // Its attempts were written and never answered: either may have been applied.
      effectUnknown: true,
    });
    expect(seenKeys).toStrictEqual(['run-1:payment', 'run-1:payment']);
    await within(Promise.all(sockets), 2000, 'both sockets closed');
    expect(cancel.listenerCount).toBe(0);
  });

  it('an attempt the deadline cut short fails the step as a timeout, not as unavailable', async () => {
    const socket = new Promise<void>((resolve) => {
      handle = (request) => {
        request.socket.once('close', resolve);
        // Never answered.
      };
    });
    const step = chargeStep(5000, { attempts: 3, initial_delay_ms: 1 });
    const cancel = new CancelSource();
    // No order timer here: only the attempt's own timer, set just past the deadline, ends it.
    const failure = await orderErrorOf(
      step.run({ ...order, deadlineAt: Date.now() + 150 }, cancel, info),
    );
    expect(failure.kind).toBe('timeout');
    expect(failure.cause).toMatch(/^no answer within \d+ ms$/);
    // Written and never answered: it may have been applied, and is to be undone.
    expect(failure.effectUnknown).toBe(true);
    expect(seenKeys).toStrictEqual(['run-1:payment']);
    await within(socket, 2000, 'the socket closed');
    expect(cancel.listenerCount).toBe(0);
  });

  it('no connection is no answer: retried, then unavailable', async () => {
    const closedServer = createServer();
    await new Promise<void>((resolve) => closedServer.listen(0, '127.0.0.1', resolve));
    const { port } = closedServer.address() as AddressInfo;
    await new Promise((resolve) => closedServer.close(resolve));
    const step = stepOf({
      name: 'payment',
      request: { url: `http://127.0.0.1:${port}/charges`, body: { amount: '{{amount}}' } },
      retry: { attempts: 2, initial_delay_ms: 1, jitter: false },
    });
    const cancel = new CancelSource();
    const failure = await orderErrorOf(step.run(order, cancel, info));
    expect(failure.kind).toBe('unavailable');
    expect(failure.cause).toMatch(/^no answer: /);
    // Never written: nothing can have been applied.
    expect(failure.effectUnknown).toBe(false);
    expect(cancel.listenerCount).toBe(0);
  });

  it('an abort while the request waits for a connection ends it at once; it is never sent', async () => {
    let arrived!: () => void;
    const firstArrived = new Promise<void>((resolve) => (arrived = resolve));
    let answerFirst!: () => void;
    handle = (request, response) => {
      response.statusCode = 201;
      if (request.headers['idempotency-key'] !== 'run-1:payment') {
        response.end();
        return;
      }
      answerFirst = () => response.end();
      arrived();
    };
    // One connection: the second order's request waits for the first's to end.
    const step = paymentStep(1);
    const first = step.run(order, new CancelSource(), info);
    await firstArrived;
    const cancel = new CancelSource();
    const second = step.run({ id: 'o-2', amount: 5 }, cancel, { runId: 'run-2' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    cancel.abort(new OrderError('vendor_unavailable', 'a sibling failed'));
    // Settled before the connection is free; counted as done, as any request the pool was given.
    await expect(within(second, 1000, 'the aborted request settled')).resolves.toBeUndefined();
    expect(cancel.listenerCount).toBe(0);
    answerFirst();
    await first;
    // The second order's request, next in the queue, never reaches the upstream.
    await step.run({ id: 'o-3', amount: 1 }, new CancelSource(), { runId: 'run-3' });
    expect(seenKeys).toStrictEqual(['run-1:payment', 'run-3:payment']);
  });
});
