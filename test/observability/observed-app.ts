import type { Pool } from '../../src/core/semaphore.js';
import { buildApp, type App } from '../../src/http/app.js';
import {
  createObservability,
  type Observability,
  type ObservabilityOptions,
} from '../../src/observability/observability.js';
import { observedService } from '../../src/server.js';
import type { Order } from '../../src/order/order.js';
import type { Step } from '../../src/order/step.js';
import type { OrderService } from '../../src/service/order-service.js';
import { testServiceOptions, type TestServiceOptions } from '../helpers.js';

export interface ObservedService {
  service: OrderService;
  observability: Observability;
}

export interface ObservedTestApp extends ObservedService {
  app: App;
}

/**
 * observeService wires observability around a fresh service with the composition root's
 * own function (src/server.ts).
 */
export function observeService(
  options: TestServiceOptions & ObservabilityOptions = {},
): ObservedService {
  const { metrics, defaultMetrics, dashboard, recentOrders, tracing, onError, ...rest } = options;
  const observability = createObservability({
    ...(metrics === undefined ? {} : { metrics }),
    ...(defaultMetrics === undefined ? {} : { defaultMetrics }),
    ...(dashboard === undefined ? {} : { dashboard }),
    ...(recentOrders === undefined ? {} : { recentOrders }),
    ...(onError === undefined ? {} : { onError }),
    tracing,
  });
  const service = observedService(observability, testServiceOptions(rest));
  return { service, observability };
}

/** buildObservedApp builds the real app with observability around a fresh service. */
export function buildObservedApp(
  options: TestServiceOptions & ObservabilityOptions & { adminToken?: string } = {},
): ObservedTestApp {
  const { adminToken, ...rest } = options;
  const observed = observeService(rest);
  const app = buildApp({ ...observed, adminToken });
  app.addHook('onClose', () => observed.service.close());
  return { app, ...observed };
}

/**
 * courierHolding is a pipeline of one courier step that holds its pool slot until
 * `hold(order)` settles.
 */
export function courierHolding(
  hold: (order: Order) => Promise<unknown>,
): (pool: Pool) => Step<Order>[] {
  return (pool) => [
    {
      name: 'courier',
      run: async (order, cancel) => {
        const permit = await pool.acquire(cancel);
        try {
          await hold(order);
        } finally {
          permit.release();
        }
      },
    },
  ];
}

/** A payment that fails at once while the vendor and courier steps still wait. */
export const failingOrder = {
  order_id: 'o-fail',
  amount: 100,
  fail_step: 'payment',
  delay_ms: { payment: 0, vendor: 5000, courier: 5000 },
} as const;

/** An order whose three steps succeed at once. */
export const quickOrder = {
  order_id: 'o-ok',
  amount: 100,
  delay_ms: { payment: 0, vendor: 0, courier: 0 },
} as const;
