import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../helpers.js';
import { postJson, runLoad } from './load.js';
import { killServers, spawnServer } from './server-process.js';

// What the original Go service does, done the same way by the server as users run it: its
// README's curl sequence verbatim, its handler tests, its stress test and its fuzz test,
// ported as black-box tests of the real process in its default configuration.

afterEach(killServers);

interface Answer {
  status: string;
  order_id: string;
  steps: { name: string; status: string; duration_ms: number; detail?: string }[];
  error?: { kind: string; message: string };
}

describe("the original's README, verbatim", () => {
  it('answers its four curl examples 200, 400, 504 (2 s deadline), 503', async () => {
    const server = spawnServer();
    const port = await server.listening();
    const curl = (data: string) => postJson(port, data);

    const o1 = await curl('{"order_id":"o1","amount":10}');
    expect(o1.status).toBe(200);
    expect((o1.body as Answer).status).toBe('ok');

    const o2 = await curl(
      '{"order_id":"o2","amount":10,"fail_step":"payment","delay_ms":{"vendor":800,"courier":800}}',
    );
    expect(o2.status).toBe(400);
    expect((o2.body as Answer).error?.kind).toBe('payment_declined');

    const startedAt = performance.now();
    const o3 = await curl(
      '{"order_id":"o3","amount":10,"delay_ms":{"payment":3000,"vendor":3000,"courier":3000}}',
    );
    const tookMs = performance.now() - startedAt;
    expect(o3.status).toBe(504);
    expect((o3.body as Answer).error?.kind).toBe('timeout');
    // A real process on a shared machine: its 2 s timer starts after the client's clock did,
    // so the answer cannot come sooner; the upper bound only has to be generous.
    expect(tookMs, 'not before the deadline').toBeGreaterThanOrEqual(2000);
    expect(tookMs, 'nor long after it').toBeLessThan(2000 + 500);

    // The same order_id again, without an Idempotency-Key: it runs, as in the original.
    const o2again = await curl(
      '{"order_id":"o2","amount":10,"fail_step":"vendor","delay_ms":{"vendor":800,"courier":800}}',
    );
    expect(o2again.status).toBe(503);
    expect((o2again.body as Answer).error?.kind).toBe('vendor_unavailable');

    // Its wire types: duration_ms is whole milliseconds (Go int64).
    for (const answer of [o1, o2, o3, o2again]) {
      for (const step of (answer.body as Answer).steps) {
        expect(Number.isInteger(step.duration_ms), JSON.stringify(step)).toBe(true);
      }
    }
  }, 20_000);
});

describe("the original's handler tests", () => {
  it('a payment failure cancels the others: 400, steps error / canceled / canceled', async () => {
    const server = spawnServer({ COURIER_POOL_SIZE: '1' });
    const port = await server.listening();
    const answer = await postJson(port, {
      order_id: 'o-test',
      amount: 10,
      fail_step: 'payment',
      delay_ms: { payment: 150, vendor: 800, courier: 800 },
    });
    expect(answer.status).toBe(400);
    const body = answer.body as Answer;
    expect(body.status).toBe('error');
    expect(body.error?.kind).toBe('payment_declined');
    expect(body.steps.map((s) => [s.name, s.status])).toStrictEqual([
      ['payment', 'error'],
      ['vendor', 'canceled'],
      ['courier', 'canceled'],
    ]);
  });

  it.each([
    { name: 'method_not_allowed', method: 'GET', body: undefined, status: 405 },
    {
      name: 'invalid_json',
      method: 'POST',
      body: '{"order_id":',
      status: 400,
      kind: 'bad_request',
    },
    {
      name: 'missing_order_id',
      method: 'POST',
      body: '{"amount":10}',
      status: 400,
      kind: 'bad_request',
    },
  ])('validation: $name is $status', async ({ method, body, status, kind }) => {
    const server = spawnServer({ COURIER_POOL_SIZE: '1' });
    const port = await server.listening();
    const response = await fetch(`http://127.0.0.1:${port}/order`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
    });
    expect(response.status).toBe(status);
    if (kind !== undefined) {
      expect(((await response.json()) as Answer).error?.kind).toBe(kind);
    }
  });
});

describe("the original's stress test", () => {
  it('100 clients × 200 orders, pool 4, steps at 1 ms, mixed outcomes: every status right, nothing left running', async () => {
    const server = spawnServer({ COURIER_POOL_SIZE: '4' });
    const port = await server.listening();
    const failStep = (idx: number): string | undefined =>
      idx % 5 === 0 ? 'payment' : idx % 7 === 0 ? 'vendor' : idx % 9 === 0 ? 'courier' : undefined;
    const wantStatus = (idx: number): number =>
      idx % 5 === 0 ? 400 : idx % 7 === 0 || idx % 9 === 0 ? 503 : 200;
    const sent = await runLoad({
      port,
      clients: 100,
      perClient: 200,
      body: (idx) => {
        const fail = failStep(idx);
        return {
          order_id: `o-${idx}`,
          amount: 1200,
          ...(fail === undefined ? {} : { fail_step: fail }),
          delay_ms: { payment: 1, vendor: 1, courier: 1 },
        };
      },
    });
    expect(sent).toHaveLength(20_000);
    const wrong = sent.filter((s) => s.status !== wantStatus(s.index));
    expect(wrong.slice(0, 5).map((s) => `${s.index}: ${s.status} ${s.text}`)).toStrictEqual([]);
    for (const s of sent) {
      const body = JSON.parse(s.text) as Answer;
      expect(body.status).toBe(s.status === 200 ? 'ok' : 'error');
    }
    // Nothing keeps running once the answers are sent.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^order_pipeline_steps_in_flight 0$/m);
    expect(metrics).toMatch(/^order_pipeline_courier_pool_slots_in_use 0$/m);
    expect(metrics).toMatch(/^order_pipeline_orders_in_flight 0$/m);
  }, 120_000);

  it('100 clients × 30 orders, pool 5, steps at 1 ms, as the issue measured: all served, none refused', async () => {
    const server = spawnServer();
    const port = await server.listening();
    const sent = await runLoad({
      port,
      clients: 100,
      perClient: 30,
      body: (idx) => ({
        order_id: `s-${idx}`,
        amount: 1,
        delay_ms: { payment: 1, vendor: 1, courier: 1 },
      }),
    });
    const statuses = new Map<number | undefined, number>();
    for (const s of sent) statuses.set(s.status, (statuses.get(s.status) ?? 0) + 1);
    expect([...statuses]).toStrictEqual([[200, 3000]]);
  }, 60_000);
});

describe("the original's fuzz test, over the courier pool size", () => {
  // The original fuzzes the pool size and checks that a fresh pool grants a slot at once.
  // Here a size in range serves an order at once; a size out of range is refused at start-up
  // with the reason (the original clamps it silently).
  const random = seededRandom(20261202);
  const sizes = [1, 128, ...Array.from({ length: 3 }, () => 1 + Math.floor(random() * 5000))];
  it.each(sizes)('COURIER_POOL_SIZE=%i serves an order at once', async (size) => {
    const server = spawnServer({ COURIER_POOL_SIZE: String(size) });
    const port = await server.listening();
    const answer = await postJson(port, {
      order_id: `fuzz-${size}`,
      amount: 1,
      delay_ms: { payment: 1, vendor: 1, courier: 1 },
    });
    expect(answer.status).toBe(200);
    const courier = (answer.body as Answer).steps.find((s) => s.name === 'courier');
    expect(courier?.duration_ms).toBeLessThan(50);
  });

  it.each(['0', '-190', '1.5', 'many', '100001'])(
    'COURIER_POOL_SIZE=%s is refused at start-up with the reason',
    async (size) => {
      const server = spawnServer({ COURIER_POOL_SIZE: size });
      const { code } = await server.exited;
      expect(code).not.toBe(0);
      expect(server.output()).toContain('COURIER_POOL_SIZE must be an integer');
      expect(server.output()).not.toMatch(/Server listening/);
    },
  );
});
