import { buildApp, type App } from '../../src/http/app.js';
import {
  observeOrderService,
  type ObservabilityOptions,
  type ObservedOrderService,
} from '../../src/observability/observability.js';
import type { OrderServiceOptions } from '../../src/service/order-service.js';

export interface ObservedTestApp extends ObservedOrderService {
  app: App;
}

/** buildObservedApp builds the real app with observability around a fresh service. */
export function buildObservedApp(
  options: OrderServiceOptions & ObservabilityOptions & { requestTimeoutMs?: number } = {},
): ObservedTestApp {
  const { requestTimeoutMs = 2000, ...rest } = options;
  const observed = observeOrderService(rest);
  const app = buildApp({ ...observed, requestTimeoutMs });
  return { app, ...observed };
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
