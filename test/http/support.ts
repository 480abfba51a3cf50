import { request, type Agent, type ClientRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, vi } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import type { App } from '../../src/http/app.js';
import { buildTestApp, promiseState, type TestApp, type TestServiceOptions } from '../helpers.js';

/** HttpResult is a response as the HTTP tests compare it: exact status and parsed body. */
export interface HttpResult {
  status: number;
  body: unknown;
}

/**
 * withoutDurations checks that every step of an order response has a non-negative integer
 * `duration_ms` and returns the body without them, so the rest can be compared exactly.
 */
export function withoutDurations(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || !('steps' in body)) return body;
  const { steps, ...rest } = body;
  expect(Array.isArray(steps), 'steps is an array').toBe(true);
  return {
    ...rest,
    steps: (steps as Record<string, unknown>[]).map(({ duration_ms, ...step }) => {
      expect(typeof duration_ms, `duration_ms of ${String(step['name'])}`).toBe('number');
      // Whole milliseconds, as the original service reports them.
      expect(Number.isInteger(duration_ms) && (duration_ms as number) >= 0).toBe(true);
      return step;
    }),
  };
}

/**
 * waitFor resolves once `condition()` holds, polling on every timer tick; it rejects with
 * `what` if the condition still fails after `timeoutMs`. Used where the event to await
 * happens inside the server (a socket closing) and exposes no promise.
 */
export async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs = 2000,
): Promise<number> {
  const startedAt = performance.now();
  while (!condition()) {
    if (performance.now() - startedAt > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return performance.now() - startedAt;
}

/**
 * callbacksRan resolves once `work` has settled or 20 turns of the event loop have passed:
 * enough for the callbacks the app queues (continuations, ticks, immediates, in-process I/O)
 * without moving any fake clock. Resolves with whether `work` is still pending.
 */
async function callbacksRan(work: Promise<unknown>): Promise<boolean> {
  for (let turn = 0; turn < 20; turn++) {
    if ((await promiseState(work)) !== 'pending') return false;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return (await promiseState(work)) === 'pending';
}

/**
 * settledAfterMs, under fake timers that leave `setImmediate` real, moves the fake clock one
 * millisecond at a time until `work` has settled (letting the app's callbacks run between
 * two moves), and resolves with the milliseconds that took: 0 if it settled without time
 * passing. It rejects if `work` is still pending after `limitMs`.
 */
export async function settledAfterMs(work: Promise<unknown>, limitMs = 10_000): Promise<number> {
  let ms = 0;
  while (await callbacksRan(work)) {
    if (ms >= limitMs) throw new Error(`not settled within ${limitMs} ms of fake time`);
    await vi.advanceTimersByTimeAsync(1);
    ms++;
  }
  return ms;
}

const instantApps: App[] = [];

/**
 * instantApp builds the real app around a fresh service (see `buildTestApp`) whose simulated
 * steps take no time; {@link closeInstantApps} closes every one built.
 */
export function instantApp(options: TestServiceOptions = {}): TestApp {
  const made = buildTestApp({ delays: { payment: 0, vendor: 0, courier: 0 }, ...options });
  instantApps.push(made.app);
  return made;
}

/** closeInstantApps closes every app {@link instantApp} built; for `afterEach`. */
export async function closeInstantApps(): Promise<void> {
  for (const app of instantApps.splice(0)) await app.close();
}

/** injectOrder sends `body` to `POST /order` of `app`, with `key` as its Idempotency-Key. */
export function injectOrder(app: App, body: object, key?: string): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'POST',
    url: '/order',
    payload: body,
    headers: key === undefined ? {} : { 'idempotency-key': key },
  });
}

/** listen starts `app` on a free port of 127.0.0.1 and resolves with the port. */
export async function listen(app: App): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

export interface PostOptions {
  agent?: Agent;
  /** Headers besides the content type and length. */
  headers?: Record<string, string>;
  /** Called with the request once it is sent, e.g. to destroy it mid-order. */
  onRequest?: (request: ClientRequest) => void;
}

/**
 * postRaw sends `payload` as the JSON body of `POST /order` on 127.0.0.1:`port` over
 * node:http, byte for byte, and resolves with the status and the answer's text.
 */
export function postRaw(
  port: number,
  payload: string | Buffer,
  options: PostOptions = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/order',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...options.headers,
        },
        ...(options.agent ? { agent: options.agent } : {}),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(payload);
    options.onRequest?.(outgoing);
  });
}

/** postOrder sends `body` as JSON to `POST /order` and resolves with its parsed answer. */
export async function postOrder(
  port: number,
  body: unknown,
  options: PostOptions = {},
): Promise<HttpResult> {
  const { status, text } = await postRaw(port, JSON.stringify(body), options);
  return { status, body: JSON.parse(text) as unknown };
}
