import { Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, bodyLimitBytes, type App } from '../../src/http/app.js';
import { statusOf, type HttpErrorKind } from '../../src/http/error-catalogue.js';
import type { OrderService } from '../../src/service/order-service.js';
import type { Order } from '../../src/order/order.js';
import { simulatedSteps } from '../../src/order/simulated-steps.js';
import type { Step } from '../../src/order/step.js';
import { waitFor } from '../http/support.js';
import { testService } from '../helpers.js';

// The fault-injection suite: 100,000 requests against the real app, a random mix of valid
// orders, every failure kind, misbehaving steps, overload bursts, malformed, oversized and
// mistyped bodies, and, over real sockets, client aborts at random moments and slow
// clients. Then the invariants. 90% of the requests go through `app.inject` (the whole
// Fastify stack without sockets: fast and deterministic), 10% over real keep-alive sockets,
// where only a real connection can go away or dribble its body.

const totalRequests = 100_000;
const socketShare = 0.1;
const seed = Number(process.env['FAULT_SEED'] ?? Date.now() % 2 ** 31);

/** mulberry32: a small seeded generator, so a failing run can be replayed with FAULT_SEED. */
function random(seedValue: number): () => number {
  let state = seedValue >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = random(seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;

/** A request to send and the kinds its answer may have (overload may refuse any order). */
interface Case {
  method: 'POST' | 'GET' | 'PUT';
  url: string;
  contentType: string;
  body: string;
  expect: readonly (HttpErrorKind | 'ok')[];
}

const requestTimeoutMs = 25;
// Any order may be refused under overload, and under a burst one may wait for a courier
// past its short deadline: both are correct answers, checked like any other.
const orderKinds = ['overloaded', 'timeout'] as const;

/** makeCase draws one request of the mix. */
function makeCase(n: number): Case {
  const id = `o-${n}`;
  // Mostly no wait at all: timers are what costs, and the mix, not the wait, is the point.
  const delay = () => (rand() < 0.7 ? 0 : 1);
  const order = (
    extra: Record<string, unknown>,
    kinds: readonly (HttpErrorKind | 'ok')[],
  ): Case => ({
    method: 'POST',
    url: '/order',
    contentType: 'application/json',
    body: JSON.stringify({
      order_id: id,
      amount: 1 + Math.floor(rand() * 10_000),
      delay_ms: { payment: delay(), vendor: delay(), courier: delay() },
      ...extra,
    }),
    expect: [...kinds, ...orderKinds],
  });
  const roll = rand();
  if (roll < 0.4) return order({}, ['ok']);
  if (roll < 0.46) return order({ fail_step: 'payment' }, ['payment_declined']);
  if (roll < 0.52) return order({ fail_step: 'vendor' }, ['vendor_unavailable']);
  if (roll < 0.58) return order({ fail_step: 'courier' }, ['no_courier']);
  if (roll < 0.61) {
    // Far past the deadline: even a loop lagging by a second cannot let it finish first.
    return order({ delay_ms: { payment: 5000, vendor: 0, courier: 0 } }, ['timeout']);
  }
  if (roll < 0.65) return order({ order_id: `boom-${n}` }, ['internal']);
  if (roll < 0.67) {
    // Ignores the abort of a payment failure: answered after the grace period, abandoned.
    return order({ order_id: `stuck-${n}`, fail_step: 'payment' }, ['payment_declined']);
  }
  const malformed: Case[] = [
    {
      method: 'POST',
      url: '/order',
      contentType: 'application/json',
      body: '{"order_id":',
      expect: ['bad_request'],
    },
    {
      method: 'POST',
      url: '/order',
      contentType: 'application/json',
      body: '',
      expect: ['bad_request'],
    },
    {
      method: 'POST',
      url: '/order',
      contentType: 'application/json',
      body: '{"order_id":"x","amount":-1}',
      expect: ['bad_request'],
    },
    {
      method: 'POST',
      url: '/order',
      contentType: 'application/json',
      body: '{"order_id":"x","amount":1,"extra":true}',
      expect: ['bad_request'],
    },
    {
      method: 'POST',
      url: '/order',
      contentType: 'application/json',
      body: `{"order_id":"${'x'.repeat(bodyLimitBytes)}","amount":1}`,
      expect: ['payload_too_large'],
    },
    {
      method: 'POST',
      url: '/order',
      contentType: 'text/plain',
      body: 'order please',
      expect: ['unsupported_media_type'],
    },
    {
      method: 'GET',
      url: '/order',
      contentType: 'application/json',
      body: '',
      expect: ['method_not_allowed'],
    },
    {
      method: 'GET',
      url: '/nowhere',
      contentType: 'application/json',
      body: '',
      expect: ['not_found'],
    },
    {
      method: 'PUT',
      url: '/order',
      contentType: 'application/json',
      body: '{}',
      expect: ['method_not_allowed'],
    },
  ];
  return pick(malformed);
}

/** Wraps the simulated steps with one that misbehaves for marked orders. */
function faultySteps(courierPool: Parameters<typeof simulatedSteps>[0]['courierPool']) {
  const steps: Step<Order>[] = simulatedSteps({
    courierPool,
    delays: { payment: 0, vendor: 0, courier: 0 },
  });
  steps.push({
    name: 'audit',
    run: (order, cancel) => {
      if (order.id.startsWith('boom-')) throw new TypeError('audit crashed synchronously');
      if (order.id.startsWith('stuck-')) {
        // Ignores the abort for a while, then settles with a non-Error rejection.
        return new Promise((_resolve, reject) => {
          const lateReject = (): void => {
            setTimeout(reject, 8, 'late');
          };
          if (cancel.aborted) lateReject();
          else cancel.onAbort(lateReject);
        });
      }
      if (cancel.aborted) throw cancel.reason;
      return Promise.resolve();
    },
  });
  return steps;
}

interface Answer {
  status: number;
  body: string;
}

/** check asserts one answer is well-formed and its status matches its kind and the case. */
function check(testCase: Case, answer: Answer, seen: Map<string, number>): void {
  let parsed: { status?: unknown; error?: { kind?: unknown }; steps?: unknown };
  try {
    parsed = JSON.parse(answer.body) as typeof parsed;
  } catch {
    throw new Error(`seed ${seed}: not JSON (${answer.status}): ${answer.body.slice(0, 200)}`);
  }
  const kind = answer.status === 200 ? 'ok' : parsed.error?.kind;
  const where = `seed ${seed}: ${testCase.method} ${testCase.url} ${testCase.body.slice(0, 80)}`;
  if (typeof kind !== 'string' || !(testCase.expect as readonly string[]).includes(kind)) {
    throw new Error(
      `${where}: got ${answer.status} ${answer.body.slice(0, 200)}, want ${testCase.expect.join('|')}`,
    );
  }
  if (kind === 'ok') {
    if (parsed.status !== 'ok')
      throw new Error(`${where}: 200 with status ${String(parsed.status)}`);
  } else if (statusOf[kind as HttpErrorKind] !== answer.status || parsed.status !== 'error') {
    throw new Error(`${where}: kind ${kind} answered ${answer.status}`);
  }
  seen.set(kind, (seen.get(kind) ?? 0) + 1);
}

/**
 * runWindowed calls `send(n)` for n in [0, count), keeping up to `window(n)` calls in flight;
 * it rejects with the first failure once the calls in flight have settled.
 */
async function runWindowed(
  count: number,
  window: (n: number) => number,
  send: (n: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let inFlight = 0;
  let failure: unknown;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (failure === undefined && next < count && inFlight < window(next)) {
        inFlight++;
        send(next++).then(
          () => {
            inFlight--;
            pump();
          },
          (error: unknown) => {
            failure ??= error;
            inFlight--;
            pump();
          },
        );
      }
      if (inFlight === 0 && (next === count || failure !== undefined)) resolve();
    };
    pump();
  });
  if (failure !== undefined) {
    throw failure instanceof Error ? failure : new Error('send failed', { cause: failure });
  }
}

function gcHeapUsed(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('fault injection', () => {
  let app: App;
  let service: OrderService;
  let port: number;
  const unhandled: unknown[] = [];
  const warnings: Error[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  const onWarning = (warning: Error): void => {
    warnings.push(warning);
  };

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('warning', onWarning);
    service = testService({
      courierPoolSize: 8,
      maxInflightOrders: 128,
      requestTimeoutMs,
      abandonGraceMs: 2,
      steps: faultySteps,
    });
    app = buildApp({ service });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    process.off('warning', onWarning);
    await app.close();
  });

  it(`${totalRequests} mixed requests: every answer well-formed and matching its kind, then everything idle, no unhandled rejection, no listener warning, memory flat`, async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const seen = new Map<string, number>();
    const injected = Math.round(totalRequests * (1 - socketShare));
    const overSockets = totalRequests - injected;

    // Injected part: a steady window of requests in flight, with an overload burst far past
    // the admission limits for 500 requests out of every 5,000.
    let heapAfterWarmUp = 0;
    const startedAt = performance.now();
    await runWindowed(
      injected,
      (n) => (n % 5000 < 500 ? 400 : 64),
      async (n) => {
        if (n === 10_000) heapAfterWarmUp = gcHeapUsed(gc);
        const testCase = makeCase(n);
        const answer = await app.inject({
          method: testCase.method,
          url: testCase.url,
          headers: { 'content-type': testCase.contentType },
          ...(testCase.body === '' ? {} : { payload: testCase.body }),
        });
        check(testCase, { status: answer.statusCode, body: answer.body }, seen);
      },
    );

    const injectedMs = performance.now() - startedAt;
    // Socket part: keep-alive clients; some abort at a random moment, some dribble their body.
    const agent = new Agent({ keepAlive: true, maxSockets: 48 });
    let aborted = 0;
    const viaSocket = (testCase: Case): Promise<Answer | undefined> =>
      new Promise((resolve, reject) => {
        const roll = rand();
        const outgoing = httpRequest(
          {
            host: '127.0.0.1',
            port,
            agent,
            method: testCase.method,
            path: testCase.url,
            headers: {
              'content-type': testCase.contentType,
              'content-length': Buffer.byteLength(testCase.body),
            },
          },
          (response) => {
            const chunks: Buffer[] = [];
            response.on('data', (chunk: Buffer) => chunks.push(chunk));
            response.on('end', () => {
              resolve({
                status: response.statusCode ?? 0,
                body: Buffer.concat(chunks).toString('utf8'),
              });
            });
            response.on('error', () => {
              resolve(undefined);
            });
          },
        );
        outgoing.on('error', (error: NodeJS.ErrnoException) => {
          if (roll < 0.15)
            resolve(undefined); // our own abort
          else reject(error);
        });
        if (roll < 0.15) {
          aborted++;
          // Abort at a random moment: before the body, mid-order, or around the answer.
          setTimeout(() => outgoing.destroy(), Math.floor(rand() * 4));
        }
        if (roll > 0.95 && testCase.body.length > 2) {
          // A slow client: the body arrives in two parts, a few milliseconds apart.
          const half = Math.floor(testCase.body.length / 2);
          outgoing.write(testCase.body.slice(0, half));
          setTimeout(() => outgoing.end(testCase.body.slice(half)), 3);
        } else {
          outgoing.end(testCase.body);
        }
      });
    await runWindowed(
      overSockets,
      () => 64,
      async (n) => {
        const testCase = makeCase(injected + n);
        const answer = await viaSocket(testCase);
        if (answer !== undefined) check(testCase, answer, seen);
      },
    );
    agent.destroy();

    // Everything settles back to idle: aborted orders too, and abandoned steps once they end.
    await waitFor(
      'tracker, pool and admission idle',
      () =>
        service.tracker.active === 0 &&
        service.courierPool.inUse === 0 &&
        service.courierPool.waiting === 0 &&
        service.admission.inflight === 0,
      5000,
    );
    expect(service.tracker.abandoned).toBe(0);
    const heapAtEnd = gcHeapUsed(gc);
    console.info(
      `fault injection (seed ${seed}): ${injected} injected in ${Math.round(injectedMs)} ms, ` +
        `${overSockets} over sockets (${aborted} aborted) in ` +
        `${Math.round(performance.now() - startedAt - injectedMs)} ms; heap growth ` +
        `${((heapAtEnd - heapAfterWarmUp) / 1024 / 1024).toFixed(1)} MiB; answers ` +
        JSON.stringify(Object.fromEntries(seen)),
    );

    for (const kind of [
      'ok',
      'payment_declined',
      'vendor_unavailable',
      'no_courier',
      'timeout',
      'internal',
      'overloaded',
      'bad_request',
      'payload_too_large',
      'unsupported_media_type',
      'not_found',
      'method_not_allowed',
    ]) {
      expect(seen.get(kind) ?? 0, `seed ${seed}: no ${kind} answer seen`).toBeGreaterThan(0);
    }
    expect(aborted, 'some clients aborted').toBeGreaterThan(0);
    expect(unhandled, `seed ${seed}: unhandled rejections`).toEqual([]);
    expect(
      warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning'),
      'listener warnings',
    ).toEqual([]);
    // 90,000 requests after warm-up: a leak of even 300 bytes a request would show.
    expect(heapAtEnd - heapAfterWarmUp, `seed ${seed}: heap growth in bytes`).toBeLessThan(
      25 * 1024 * 1024,
    );
  }, 120_000);
});
