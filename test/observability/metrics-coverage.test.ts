import type { ClientRequest } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { metricsPrefix } from '../../src/observability/metrics.js';
import { OrderError } from '../../src/order/errors.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import { MemoryOrderStore } from '../../src/store/memory-order-store.js';
import { deferred, type Deferred } from '../helpers.js';
import { listen, postOrder } from '../http/support.js';
import {
  buildObservedApp,
  courierHolding,
  quickOrder,
  type ObservedTestApp,
} from './observed-app.js';

// Every series the service exports moves when its event happens. The series are enumerated
// from the registry of a fresh app, and each must have a scenario here that causes its
// event through the real app and service and reads the series: a metric or label value
// added later without a scenario fails the first test.

type AppOptions = NonNullable<Parameters<typeof buildObservedApp>[0]>;

interface Harness extends ObservedTestApp {
  /** post sends `body` to `POST /order`, with `headers`, and resolves with the status. */
  post(body: unknown, headers?: Record<string, string>): Promise<number>;
  /** read scrapes `/metrics` and returns the value of `series`, or undefined if absent. */
  read(series: string): Promise<number | undefined>;
  /** hold is an order whose only step holds a courier slot until released. */
  hold(orderId?: string): { answered: Promise<number>; release(): void };
  /** later runs `work` after the scenario, before the app is closed. */
  later(work: () => Promise<unknown> | undefined): void;
}

interface Scenario {
  /** Options of the app the scenario runs in, besides those of {@link harnessOptions}. */
  readonly options?: AppOptions | ((h: { gate: Deferred<void> }) => AppOptions);
  /** The value of the series before the event: 0 unless said. */
  readonly before?: number;
  /** What the series reads once the event happened: 1 unless said. */
  readonly want?: number;
  /**
   * cause makes the event happen. The series is then read until it reads `want` (some
   * events, such as a compensation, complete after the answer); an event that lasts (an
   * order holding a slot) lasts until the scenario is over.
   */
  cause(h: Harness): Promise<unknown>;
}

/** quick steps, so that only what a scenario asks for takes time. */
const instant = { payment: 0, vendor: 0, courier: 0 };
const failing = (step: 'payment' | 'vendor' | 'courier', extra: object = {}) => ({
  order_id: `fails-${step}`,
  amount: 1,
  fail_step: step,
  // The failing step fails at 20 ms; the others are either done by then or still running.
  delay_ms: { payment: 5000, vendor: 5000, courier: 5000, [step]: 20 },
  ...extra,
});
/** An order whose step `failed` fails at 20 ms, after every other step has succeeded. */
const failingLast = (failed: 'payment' | 'vendor' | 'courier', extra: object = {}) => ({
  order_id: `fails-last-${failed}`,
  amount: 1,
  fail_step: failed,
  delay_ms: { ...instant, [failed]: 20 },
  ...extra,
});

/** A pipeline whose payment step fails with `error` at once. */
const failingWith = (error: unknown) => (): Step<Order>[] => [
  {
    name: 'payment',
    run: () => Promise.reject(error),
  },
];

const ordersTotal = (outcome: string, kind: string): string =>
  `${metricsPrefix}orders_total{outcome="${outcome}",kind="${kind}"}`;

/** The holding scenarios run on a pool of one slot with one gated courier step. */
const holding = ({ gate }: { gate: Deferred<void> }): AppOptions => ({
  courierPoolSize: 1,
  steps: courierHolding(() => gate.promise),
});

const scenarios: Record<string, Scenario> = {
  [ordersTotal('ok', 'none')]: { cause: (h) => h.post(quickOrder) },
  [ordersTotal('error', 'payment_declined')]: { cause: (h) => h.post(failing('payment')) },
  [ordersTotal('error', 'vendor_unavailable')]: { cause: (h) => h.post(failing('vendor')) },
  [ordersTotal('error', 'no_courier')]: { cause: (h) => h.post(failing('courier')) },
  [ordersTotal('error', 'timeout')]: {
    options: { requestTimeoutMs: 50 },
    cause: (h) => h.post({ ...quickOrder, delay_ms: { ...instant, vendor: 5000 } }),
  },
  [ordersTotal('error', 'canceled')]: {
    options: holding,
    cause: async (h) => {
      // Only a real connection can go away.
      const port = await listen(h.app);
      const sent = deferred<ClientRequest>();
      const gone = postOrder(port, quickOrder, { onRequest: sent.resolve }).catch(() => 0);
      await expect.poll(() => h.service.courierPool.inUse).toBe(1);
      (await sent.promise).destroy();
      await gone;
    },
  },
  [ordersTotal('error', 'internal')]: {
    options: { steps: failingWith(new Error('a bug')) },
    cause: (h) => h.post(quickOrder),
  },
  [ordersTotal('error', 'shutting_down')]: {
    options: holding,
    cause: async (h) => {
      await holdTheCourier(h);
      await h.service.shutDown(0);
    },
  },
  [ordersTotal('error', 'unavailable')]: {
    options: { steps: failingWith(new OrderError('unavailable', 'the pool is down')) },
    cause: (h) => h.post(quickOrder),
  },
  [ordersTotal('refused', 'bad_request')]: { cause: (h) => h.post({ order_id: 'no-amount' }) },
  [ordersTotal('refused', 'payload_too_large')]: {
    cause: (h) => h.post({ ...quickOrder, padding: 'x'.repeat(70_000) }),
  },
  [ordersTotal('refused', 'unsupported_media_type')]: {
    cause: async (h) =>
      (
        await h.app.inject({
          method: 'POST',
          url: '/order',
          headers: { 'content-type': 'text/plain' },
          payload: 'an order',
        })
      ).statusCode,
  },
  [ordersTotal('refused', 'idempotency_conflict')]: {
    cause: async (h) => {
      const key = { 'idempotency-key': 'k-conflict' };
      await h.post(quickOrder, key);
      await h.post({ ...quickOrder, amount: 2 }, key);
    },
  },
  [ordersTotal('refused', 'order_in_progress')]: {
    // The first attempt times out after its payment ran; the payment's undoing keeps failing
    // (retried later than the test lasts), so a retry of the key must wait for it.
    options: { requestTimeoutMs: 50, compensationRetryBaseMs: 60_000 },
    cause: async (h) => {
      const key = { 'idempotency-key': 'k-in-progress' };
      const order = {
        ...quickOrder,
        delay_ms: { ...instant, vendor: 5000 },
        fail_compensation: { payment: 1 },
      };
      expect(await h.post(order, key)).toBe(504);
      expect(await h.post(order, key)).toBe(409);
    },
  },
  [ordersTotal('refused', 'overloaded')]: {
    options: (gates) => ({ ...holding(gates), maxInflightOrders: 1 }),
    cause: async (h) => {
      await holdTheCourier(h);
      expect(await h.post({ ...quickOrder, order_id: 'refused' })).toBe(503);
    },
  },
  [ordersTotal('refused', 'shutting_down')]: {
    cause: async (h) => {
      await h.service.shutDown(0);
      expect(await h.post(quickOrder)).toBe(503);
    },
  },
  [ordersTotal('refused', 'unavailable')]: {
    cause: async (h) => {
      vi.spyOn(h.service.ledger.store, 'begin').mockRejectedValue(new Error('store down'));
      expect(await h.post(quickOrder)).toBe(503);
    },
  },

  [`${metricsPrefix}order_duration_seconds_count{outcome="ok"}`]: {
    cause: (h) => h.post(quickOrder),
  },
  [`${metricsPrefix}order_duration_seconds_count{outcome="error"}`]: {
    cause: (h) => h.post(failing('payment')),
  },
  ...stepDurations(),

  [`${metricsPrefix}courier_wait_seconds_count{result="acquired"}`]: {
    cause: (h) => h.post(quickOrder),
  },
  [`${metricsPrefix}courier_wait_seconds_count{result="canceled"}`]: {
    options: { courierPoolSize: 1 },
    cause: async (h) => {
      const holder = h.post({ ...quickOrder, delay_ms: { ...instant, courier: 300 } });
      await expect.poll(() => h.service.courierPool.inUse).toBe(1);
      // Its payment fails while its courier waits for the slot: the wait is canceled.
      await h.post({ ...failing('payment'), delay_ms: { payment: 20, vendor: 0, courier: 0 } });
      await holder;
    },
  },

  [`${metricsPrefix}courier_pool_slots`]: {
    options: { courierPoolSize: 3 },
    before: 3,
    want: 3,
    cause: async () => undefined,
  },
  [`${metricsPrefix}courier_pool_slots_in_use`]: whileHeld(),
  [`${metricsPrefix}courier_pool_waiters`]: {
    options: holding,
    cause: async (h) => {
      const first = h.hold('first');
      const second = h.hold('second');
      await expect.poll(() => h.service.courierPool.waiting).toBe(1);
      h.later(() => {
        first.release();
        return Promise.all([first.answered, second.answered]);
      });
    },
  },
  [`${metricsPrefix}steps_in_flight`]: whileHeld(),
  [`${metricsPrefix}orders_in_flight`]: whileHeld(),
  [`${metricsPrefix}orders_rejected_total{kind="overloaded"}`]: {
    options: (gates) => ({ ...holding(gates), maxInflightOrders: 1 }),
    cause: async (h) => {
      await holdTheCourier(h);
      await h.post({ ...quickOrder, order_id: 'refused' });
    },
  },
  [`${metricsPrefix}orders_rejected_total{kind="shutting_down"}`]: {
    cause: async (h) => {
      await h.service.shutDown(0);
      await h.post(quickOrder);
    },
  },
  [`${metricsPrefix}admission_overloaded`]: {
    // A standing queue: courier waits above the target (0 ms) for the window (300 ms) while
    // orders are refused. The first order holds the one courier 100 ms; the next two wait for
    // it, then hold it until the scenario is over; orders keep coming, and are refused once
    // three are in flight.
    options: ({ gate }) => ({
      courierPoolSize: 1,
      maxInflightOrders: 3,
      overloadWaitMs: 0,
      overloadWindowMs: 300,
      steps: courierHolding((order) =>
        order.id === 'first' ? new Promise((resolve) => setTimeout(resolve, 100)) : gate.promise,
      ),
    }),
    cause: async (h) => {
      const orders = ['first', 'second', 'third'].map((id) =>
        h.post({ ...quickOrder, order_id: id }),
      );
      await expect
        .poll(
          () => {
            orders.push(h.post({ ...quickOrder, order_id: `more-${orders.length}` }));
            return h.service.admission.overloaded;
          },
          { timeout: 5000 },
        )
        .toBe(true);
      h.later(() => Promise.all(orders));
    },
  },

  ...compensations(),
  [`${metricsPrefix}orders_recovered_total`]: {
    options: () => ({ store: new MemoryOrderStore() }),
    cause: async (h) => {
      // A run left running by a dead instance, its lease over, recovered at start.
      const now = Date.now();
      await h.service.ledger.store.begin({
        runId: 'run-orphan',
        orderId: 'orphan',
        order: { id: 'orphan', amount: 1 },
        owner: 'dead-instance',
        leaseUntil: now - 1,
        now: now - 60_000,
      });
      await h.service.start();
      h.later(() => h.service.ledger.store.close());
    },
  },
};

/**
 * holdTheCourier has one order take the only courier slot and keep it until the scenario is
 * over, then lets it finish.
 */
async function holdTheCourier(h: Harness): Promise<void> {
  const held = h.hold();
  await expect.poll(() => h.service.courierPool.inUse).toBe(1);
  h.later(() => {
    held.release();
    return held.answered;
  });
}

/** whileHeld reads a gauge while one order holds the only courier slot: it reads 1. */
function whileHeld(): Scenario {
  return { options: holding, cause: holdTheCourier };
}

/** stepDurations: each step ok, failed, and canceled by another's failure. */
function stepDurations(): Record<string, Scenario> {
  const series = (step: string, status: string): string =>
    `${metricsPrefix}step_duration_seconds_count{step="${step}",status="${status}"}`;
  const scenarios: Record<string, Scenario> = {};
  const steps = ['payment', 'vendor', 'courier'] as const;
  for (const step of steps) {
    scenarios[series(step, 'ok')] = { cause: (h) => h.post(quickOrder) };
    scenarios[series(step, 'error')] = { cause: (h) => h.post(failing(step)) };
    // Another step fails while this one still runs.
    const other = steps.find((s) => s !== step) ?? 'payment';
    scenarios[series(step, 'canceled')] = { cause: (h) => h.post(failing(other)) };
  }
  return scenarios;
}

/**
 * compensations: for each step, its undoing succeeds, fails, and fails its last attempt
 * (flagged for an operator). The step is undone after another step, which fails last, made
 * the order fail.
 */
function compensations(): Record<string, Scenario> {
  const scenarios: Record<string, Scenario> = {};
  for (const step of ['payment', 'vendor', 'courier'] as const) {
    const failed = step === 'payment' ? 'vendor' : 'payment';
    const undo = (attemptsFailing: number) => (h: Harness) =>
      h.post(failingLast(failed, { fail_compensation: { [step]: attemptsFailing } }));
    scenarios[`${metricsPrefix}compensations_total{step="${step}",result="compensated"}`] = {
      cause: undo(0),
    };
    scenarios[`${metricsPrefix}compensations_total{step="${step}",result="compensation_failed"}`] =
      { cause: undo(1) };
    // Its one attempt fails: flagged at once.
    scenarios[`${metricsPrefix}operator_flags_total{step="${step}"}`] = {
      options: { compensationMaxAttempts: 1 },
      cause: undo(1),
    };
  }
  return scenarios;
}

const harnessOptions: AppOptions = { delays: instant };
const opened: ObservedTestApp[] = [];
const laterWork: (() => Promise<unknown> | undefined)[] = [];

afterEach(async () => {
  for (const work of laterWork.splice(0)) await work();
  for (const test of opened.splice(0)) await test.app.close();
  vi.restoreAllMocks();
});

function harness(scenario: Scenario): Harness {
  const gate = deferred();
  const options =
    typeof scenario.options === 'function' ? scenario.options({ gate }) : scenario.options;
  const test = buildObservedApp({ ...harnessOptions, ...options });
  opened.push(test);
  laterWork.push(() => {
    gate.resolve();
    return undefined;
  });
  const read = async (series: string): Promise<number | undefined> => {
    const text = (await test.app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const post = async (body: unknown, headers: Record<string, string> = {}): Promise<number> =>
    (await test.app.inject({ method: 'POST', url: '/order', payload: body as object, headers }))
      .statusCode;
  return {
    ...test,
    post,
    read,
    hold(orderId = 'held') {
      const answered = post({ ...quickOrder, order_id: orderId });
      return {
        answered,
        release: () => {
          gate.resolve();
        },
      };
    },
    later(work) {
      laterWork.unshift(work);
    },
  };
}

/**
 * exported lists the service's metrics in the registry of `test`, and every series of them
 * (a histogram's by its `_count`).
 */
async function exported(
  test: ObservedTestApp,
): Promise<{ names: Set<string>; series: Set<string> }> {
  const metrics = test.observability.metrics;
  if (metrics === undefined) throw new Error('metrics are on by default');
  const names = new Set<string>();
  const series = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    if (!metric.name.startsWith(metricsPrefix)) continue;
    names.add(metric.name);
    for (const value of metric.values) {
      const name = 'metricName' in value ? String(value.metricName) : metric.name;
      if (metric.type.toString() === 'histogram' && !name.endsWith('_count')) continue;
      const labels = Object.entries(value.labels)
        .filter(([label]) => label !== 'le')
        .map(([label, labelValue]) => `${label}="${String(labelValue)}"`)
        .join(',');
      series.add(labels === '' ? name : `${name}{${labels}}`);
    }
  }
  return { names, series };
}

/** metricOf is the metric of the series `key`: the longest of `names` it starts with. */
function metricOf(key: string, names: ReadonlySet<string>): string {
  const base = key.replace(/\{.*$/, '');
  return (
    [...names].filter((name) => base.startsWith(name)).sort((a, b) => b.length - a.length)[0] ??
    base
  );
}

describe('every exported metric', () => {
  it('has a scenario for each series the registry exports, and none for a series it does not', async () => {
    const test = buildObservedApp();
    opened.push(test);
    const { names, series } = await exported(test);
    expect([...series].sort()).toStrictEqual(Object.keys(scenarios).sort());
    // A metric with no series yet (its labels made on first use) is caught too.
    const covered = new Set(Object.keys(scenarios).map((key) => metricOf(key, names)));
    expect([...names].sort()).toStrictEqual([...covered].sort());
  });

  it.each(Object.entries(scenarios))(
    '%s moves when its event happens',
    async (series, scenario) => {
      const h = harness(scenario);
      expect(await h.read(series), 'before its event').toBe(scenario.before ?? 0);
      await scenario.cause(h);
      await expect.poll(() => h.read(series), { timeout: 5000 }).toBe(scenario.want ?? 1);
    },
  );
});
