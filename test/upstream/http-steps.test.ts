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
import { httpSteps } from '../../src/upstream/http-steps.js';
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
let upstreams: Upstreams | undefined;

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
  await upstreams?.close();
  upstreams = undefined;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** paymentStep is a payment step calling the test's upstream, with retries but no jitter. */
function paymentStep(): Step<Order> {
  const path = join(dir, 'pipeline.json');
  writeFileSync(
    path,
    JSON.stringify({
      steps: [
        {
          name: 'payment',
          request: { url: `${origin}/charges`, body: { amount: '{{amount}}' } },
          timeout_ms: 5000,
          retry: { attempts: 3, initial_delay_ms: 1, jitter: false },
          compensation: { url: `${origin}/charges/{{step_key}}/refund`, method: 'POST' },
        },
      ],
    }),
  );
  const plan = loadPipelineFile(path, {});
  upstreams = new Upstreams(4);
  const [step] = httpSteps({ plan, upstreams, courierPool: new Semaphore(1) });
  if (step === undefined) throw new Error('no step');
  return step;
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
});
