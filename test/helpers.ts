import { Writable } from 'node:stream';
import pino from 'pino';
import { defaultConfig } from '../src/config.js';
import { CancelSource, link, type ParentCancellation } from '../src/core/cancellation.js';
import { Semaphore } from '../src/core/semaphore.js';
import { buildApp, type App } from '../src/http/app.js';
import { OrderError } from '../src/order/errors.js';
import type { StepName } from '../src/order/order.js';
import type { OrderOutcome, Pipeline } from '../src/order/pipeline.js';
import { simulatedSteps } from '../src/order/simulated-steps.js';
import type { Step } from '../src/order/step.js';
import { serviceSettings } from '../src/server.js';
import { OrderService, type OrderServiceOptions } from '../src/service/order-service.js';
import { MemoryOrderStore } from '../src/store/memory-order-store.js';

/** Deferred is a promise with its resolve and reject exposed, to order events in tests. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** GatedStep is a step that says when it starts, then waits until the test opens its gate. */
export interface GatedStep<Order> {
  step: Step<Order>;
  started: Deferred<void>;
  gate: Deferred<void>;
}

/** gatedStep makes a {@link GatedStep} named `name`; it ignores its cancellation. */
export function gatedStep<Order>(name = 'payment'): GatedStep<Order> {
  const started = deferred();
  const gate = deferred();
  const step: Step<Order> = {
    name,
    run: () => {
      started.resolve();
      return gate.promise;
    },
  };
  return { step, started, gate };
}

/** flushMicrotasks lets every queued promise continuation run. */
export async function flushMicrotasks(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

export interface TestApp {
  app: App;
  service: OrderService;
}

/**
 * TestServiceOptions are a service's options where every part and number not given takes
 * the server's default: `defaultConfig`'s settings, a fresh memory store (owned by the
 * service), an in-process pool of `courierPoolSize` slots and the simulated steps with
 * `delays`.
 */
export type TestServiceOptions = Partial<OrderServiceOptions> & {
  readonly courierPoolSize?: number | undefined;
  readonly delays?: Readonly<Record<StepName, number>> | undefined;
};

/** testServiceOptions completes `options` with the server's defaults (see {@link TestServiceOptions}). */
export function testServiceOptions(options: TestServiceOptions = {}): OrderServiceOptions {
  const { courierPoolSize, delays, ...given } = options;
  return {
    ...serviceSettings(defaultConfig),
    store: new MemoryOrderStore(),
    ownsStore: given.store === undefined,
    courierPool: new Semaphore(courierPoolSize ?? defaultConfig.courierPoolSize),
    steps: (courierPool) => simulatedSteps(delays ? { courierPool, delays } : { courierPool }),
    ...given,
  };
}

/** testService is a fresh order service with the server's defaults for what is not given. */
export function testService(options: TestServiceOptions = {}): OrderService {
  return new OrderService(testServiceOptions(options));
}

/**
 * buildTestApp builds the real app around a fresh order service (see {@link testService});
 * closing the app closes the service. For what needs the server as users run it — its
 * configuration, its durable store, its process — see test/server/server-process.ts.
 */
export function buildTestApp(options: TestServiceOptions = {}): TestApp {
  const service = testService(options);
  const app = buildApp({ service });
  app.addHook('onClose', () => service.close());
  return { app, service };
}

/**
 * runWithDeadline runs `order` through `pipeline` under a deadline, as the order service puts
 * one: a parent cancellation that aborts with kind `timeout` once `deadlineMs` have passed,
 * or with `parent`'s reason if `parent` aborts first. The deadline's timer and the link to
 * `parent` are removed once the order is answered.
 */
export async function runWithDeadline<Order>(
  pipeline: Pipeline<Order>,
  order: Order,
  deadlineMs: number,
  parent?: ParentCancellation,
): Promise<OrderOutcome> {
  const deadline = new CancelSource();
  const unlink = parent === undefined ? undefined : link(parent, deadline);
  const timer = setTimeout(() => {
    deadline.abort(new OrderError('timeout', `order did not complete within ${deadlineMs} ms`));
  }, deadlineMs);
  try {
    return await pipeline.run(order, { parent: deadline });
  } finally {
    clearTimeout(timer);
    unlink?.();
  }
}

export { seededRandom } from '../bench/seeded-random.js';

/**
 * promiseState tells whether `promise` has settled once every queued continuation has run. It
 * handles a rejection, so a test may look at a promise it later awaits.
 */
export async function promiseState(
  promise: Promise<unknown>,
): Promise<'pending' | 'fulfilled' | 'rejected'> {
  let state: 'pending' | 'fulfilled' | 'rejected' = 'pending';
  promise.then(
    () => (state = 'fulfilled'),
    () => (state = 'rejected'),
  );
  await flushMicrotasks();
  return state;
}

/** LogLine is one JSON line written to a {@link capturingLogger}. */
export interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  order_id?: string;
  [field: string]: unknown;
}

/** capturingLogger is a pino logger at `level` whose lines are parsed into `lines` as written. */
export function capturingLogger(level = 'info'): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text !== '') lines.push(JSON.parse(text) as LogLine);
      }
      callback();
    },
  });
  return { logger: pino({ level }, stream), lines };
}
