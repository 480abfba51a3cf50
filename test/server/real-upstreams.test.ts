import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postOrder } from '../http/support.js';
import { killServers, spawnServer } from './server-process.js';
import {
  killUpstreams,
  pipelineFile,
  removePipelineFiles,
  startUpstreams,
  type SeenRequest,
  type UpstreamName,
  type UpstreamsProcess,
} from './upstreams-process.js';

// The service as `npm start` starts it with PIPELINE_FILE (examples/pipeline.json), against
// the reference upstreams running as a process of their own on loopback.

let upstreams: UpstreamsProcess;
let port: number;

beforeAll(async () => {
  upstreams = await startUpstreams();
  const file = pipelineFile((pipeline) => {
    // The vendor's breaker opens after two failed attempts, each order making one.
    const vendor = pipeline.steps[1] ?? {};
    vendor['retry'] = { attempts: 1 };
    vendor['breaker'] = { consecutive_failures: 2, half_open_after_ms: 1000 };
  });
  const server = spawnServer({ PIPELINE_FILE: file, ...upstreams.env });
  port = await server.listening();
}, 40_000);

afterAll(async () => {
  await killServers();
  await killUpstreams();
  removePipelineFiles();
});

interface OrderBody {
  status: string;
  error?: { kind: string; message: string };
  steps?: { name: string; status: string; compensation?: string }[];
}

interface RecordedRun {
  run_id: string;
  state: string;
  steps: { name: string; compensation: string }[];
}

async function recorded(orderId: string): Promise<RecordedRun> {
  const response = await fetch(`http://127.0.0.1:${port}/order/${orderId}`);
  return (await response.json()) as RecordedRun;
}

/** requestsOf lists what `upstream` saw of `orderId`'s step (its key is `<run id>:<step>`). */
async function requestsOf(
  upstream: UpstreamName,
  orderId: string,
  action: SeenRequest['action'] = 'apply',
): Promise<SeenRequest[]> {
  const { run_id } = await recorded(orderId);
  const key = action === 'apply' ? `${run_id}:${upstream}` : `${run_id}:${upstream}:undo`;
  const { requests } = await upstreams.ledger(upstream);
  return requests.filter((request) => request.key === key && request.action === action);
}

/** settled polls the run of `orderId` until no compensation is pending or failed. */
async function settled(orderId: string): Promise<RecordedRun> {
  for (let i = 0; i < 100; i++) {
    const run = await recorded(orderId);
    const open = run.steps.some(
      (step) => step.compensation === 'pending' || step.compensation === 'compensation_failed',
    );
    if (run.state === 'finished' && !open) return run;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`compensations of ${orderId} did not settle`);
}

async function breakerState(upstream: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = new RegExp(
    `^order_pipeline_upstream_breaker_state\\{upstream="${upstream}"\\} (\\d+)`,
    'm',
  ).exec(text);
  return line === null ? undefined : Number(line[1]);
}

describe('real upstreams', () => {
  it('runs an order through the three upstreams, each charged once under the run key', async () => {
    const { status } = await postOrder(port, {
      order_id: 'real-ok',
      amount: 10,
      details: { note: 'ring twice', address: { street: 'Main St 1' } },
    });
    expect(status).toBe(200);
    for (const upstream of ['payment', 'vendor', 'courier'] as const) {
      const requests = await requestsOf(upstream, 'real-ok');
      expect(
        requests.map((request) => request.status),
        upstream,
      ).toStrictEqual([201]);
    }
  });

  it('refuses the simulated steps’ fields with a clear 400', async () => {
    const { status, body } = await postOrder(port, {
      order_id: 'real-simulated',
      amount: 10,
      fail_step: 'vendor',
    });
    expect(status).toBe(400);
    expect(body).toStrictEqual({
      status: 'error',
      order_id: 'real-simulated',
      error: {
        kind: 'bad_request',
        message: 'fail_step: drive the simulated steps only, and this service calls real upstreams',
      },
    });
  });

  it('a decline (402) answers 400 payment_declined and is not retried', async () => {
    const { status, body } = await postOrder(port, { order_id: 'real-decline', amount: 113 });
    expect(status).toBe(400);
    expect((body as OrderBody).error?.kind).toBe('payment_declined');
    const requests = await requestsOf('payment', 'real-decline');
    expect(requests.map((request) => request.status)).toStrictEqual([402]);
  });

  it('a 503 with Retry-After is retried after it, with the same key, and succeeds', async () => {
    await upstreams.control('payment', { unavailable_next: 1, retry_after_s: 1 });
    const started = performance.now();
    const { status } = await postOrder(port, { order_id: 'real-retry-after', amount: 10 });
    const elapsedMs = performance.now() - started;
    expect(status).toBe(200);
    expect(elapsedMs, 'waited for Retry-After: 1').toBeGreaterThanOrEqual(1000);
    const requests = await requestsOf('payment', 'real-retry-after');
    expect(requests.map((request) => request.status)).toStrictEqual([503, 201]);
  });

  it('a slow upstream answers 504 at the deadline, and its request sockets are closed', async () => {
    await upstreams.control('courier', { latency_ms: 5000 });
    try {
      const started = performance.now();
      const { status, body } = await postOrder(port, { order_id: 'real-slow', amount: 10 });
      const elapsedMs = performance.now() - started;
      expect(status).toBe(504);
      expect((body as OrderBody).error?.kind).toBe('timeout');
      expect(elapsedMs).toBeLessThan(2000 + 500);
      const requests = await requestsOf('courier', 'real-slow');
      expect(requests.length).toBeGreaterThanOrEqual(1);
      // Each attempt was cut (its own timeout, then the deadline): none was answered.
      expect(requests.every((request) => request.socketClosedEarly)).toBe(true);
      // The attempt in flight at the deadline may have been applied: it is undone (or found
      // to be nothing to undo), never left open.
      const run = await settled('real-slow');
      expect(run.steps.find((step) => step.name === 'courier')?.compensation).toBe('compensated');
    } finally {
      await upstreams.control('courier', { latency_ms: 5 });
    }
  });

  it("a sibling's failure aborts the requests in flight and undoes the completed steps", async () => {
    await upstreams.control('payment', { latency_ms: 300 });
    await upstreams.control('courier', { latency_ms: 3000 });
    try {
      const { status, body } = await postOrder(port, { order_id: 'real-sibling', amount: 213 });
      expect(status).toBe(400);
      expect((body as OrderBody).error?.kind).toBe('payment_declined');
      const run = await settled('real-sibling');
      expect(run.steps.map((step) => [step.name, step.compensation])).toStrictEqual([
        ['payment', 'not_needed'],
        ['vendor', 'compensated'],
        ['courier', 'compensated'],
      ]);
      // The courier's request was in flight: its socket was closed, nothing was assigned,
      // and its undo found nothing to undo.
      const courier = await requestsOf('courier', 'real-sibling');
      expect(courier.map((request) => request.socketClosedEarly)).toStrictEqual([true]);
      const courierUndo = await requestsOf('courier', 'real-sibling', 'undo');
      expect(courierUndo.map((request) => request.status)).toStrictEqual([404]);
      // The vendor had been notified: its notification was retracted by its own request.
      const vendorUndo = await requestsOf('vendor', 'real-sibling', 'undo');
      expect(vendorUndo.map((request) => request.status)).toStrictEqual([200]);
      const { run_id } = await recorded('real-sibling');
      const { effects } = await upstreams.ledger('vendor');
      expect(effects.find((effect) => effect.key === `${run_id}:vendor`)?.undone).toBe(true);
    } finally {
      await upstreams.control('payment', { latency_ms: 5 });
      await upstreams.control('courier', { latency_ms: 5 });
    }
  });

  it('a compensation the upstream refuses for now (503) is retried by the saga until done', async () => {
    await upstreams.control('payment', { latency_ms: 300 });
    await upstreams.control('vendor', { undo_unavailable_next: 1 });
    try {
      const { status } = await postOrder(port, { order_id: 'real-undo-retry', amount: 313 });
      expect(status).toBe(400);
      const run = await settled('real-undo-retry');
      expect(run.steps.find((step) => step.name === 'vendor')?.compensation).toBe('compensated');
      const undos = await requestsOf('vendor', 'real-undo-retry', 'undo');
      expect(undos.map((request) => request.status)).toStrictEqual([503, 200]);
    } finally {
      await upstreams.control('payment', { latency_ms: 5 });
    }
  });

  it('a step whose answers were all lost fails, and its charge, applied unseen, is refunded', async () => {
    // Every attempt is applied (once, under its key) and its answer lost: the service cannot
    // know the charge exists, so once its retries are spent it undoes the step anyway.
    await upstreams.control('payment', { lose_answers_next: 4 });
    try {
      const { status, body } = await postOrder(port, { order_id: 'real-lost', amount: 42 });
      expect(status).toBe(503);
      expect((body as OrderBody).error?.kind).toBe('unavailable');
      const run = await settled('real-lost');
      expect(run.steps.find((step) => step.name === 'payment')?.compensation).toBe('compensated');
      const requests = await requestsOf('payment', 'real-lost');
      expect(requests.map((request) => request.status)).toStrictEqual([
        'lost',
        'lost',
        'lost',
        'lost',
      ]);
      const { effects } = await upstreams.ledger('payment');
      expect(effects.filter((effect) => effect.orderId === 'real-lost')).toStrictEqual([
        { key: `${run.run_id}:payment`, orderId: 'real-lost', amount: 42, undone: true },
      ]);
    } finally {
      await upstreams.control('payment', { lose_answers_next: 0 });
    }
  });

  it('counts requests by upstream and status class, retries and aborts', async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (series: string): number => {
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    };
    expect(
      value(
        'order_pipeline_upstream_request_duration_seconds_count{upstream="payment",status_class="4xx"}',
      ),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value('order_pipeline_upstream_retries_total{upstream="payment"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value('order_pipeline_upstream_aborts_total{upstream="courier"}'),
    ).toBeGreaterThanOrEqual(1);
  });

  it('a breaker opens after consecutive failures, fails fast, and closes after a probe', async () => {
    expect(await breakerState('vendor')).toBe(0);
    await upstreams.control('vendor', { unavailable_next: 2, retry_after_s: 0 });
    for (const orderId of ['real-breaker-1', 'real-breaker-2']) {
      const { status, body } = await postOrder(port, { order_id: orderId, amount: 10 });
      expect(status, orderId).toBe(503);
      expect((body as OrderBody).error?.kind).toBe('vendor_unavailable');
    }
    expect(await breakerState('vendor')).toBe(2);
    const { status, body } = await postOrder(port, { order_id: 'real-breaker-open', amount: 10 });
    expect(status).toBe(503);
    expect((body as OrderBody).error?.kind).toBe('vendor_unavailable');
    expect(await requestsOf('vendor', 'real-breaker-open'), 'failed fast').toStrictEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const probe = await postOrder(port, { order_id: 'real-breaker-probe', amount: 10 });
    expect(probe.status).toBe(200);
    expect(await breakerState('vendor')).toBe(0);
  });
});

describe('a bad pipeline file', () => {
  it.each([
    [
      'a field of the wrong type',
      (steps: Record<string, unknown>[]) => {
        (steps[0] ?? {})['timeout_ms'] = 'fast';
      },
      /: \/steps\/0\/timeout_ms: expected integer/,
    ],
    [
      'an unknown error kind',
      (steps: Record<string, unknown>[]) => {
        (steps[0] ?? {})['unavailable_kind'] = 'teapot';
      },
      /: \/steps\/0\/unavailable_kind: expected one of "payment_declined", /,
    ],
    [
      'a secret from an unset variable',
      (steps: Record<string, unknown>[]) => {
        (steps[1] ?? {})['request'] = {
          url: 'http://127.0.0.1:1/x',
          headers: { authorization: 'Bearer ${ORDER_PIPELINE_TEST_UNSET_SECRET}' },
        };
      },
      /: \/steps\/1\/request\/headers\/authorization: needs the environment variable ORDER_PIPELINE_TEST_UNSET_SECRET, which is not set/,
    ],
  ])('%s stops the start with one line naming the file and the field', async (_, edit, want) => {
    const file = pipelineFile((pipeline) => {
      edit(pipeline.steps);
    });
    const server = spawnServer({ PIPELINE_FILE: file });
    const { code } = await server.exited;
    expect(code).not.toBe(0);
    const lines = server.output().trim().split('\n');
    expect(lines, server.output()).toHaveLength(1);
    const { level, msg } = JSON.parse(lines[0] ?? '') as { level: number; msg: string };
    expect(level, 'fatal').toBe(60);
    expect(msg.startsWith(`PIPELINE_FILE: pipeline file ${file}: `), msg).toBe(true);
    expect(msg).toMatch(want);
  });
});
