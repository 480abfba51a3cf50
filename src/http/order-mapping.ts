import { roundMs } from '../observability/order-log.js';
import type { Order } from '../order/order.js';
import type { OrderOutcome } from '../order/pipeline.js';
import type { RecordedOutcome } from '../store/order-ledger.js';
import type { OrderBody, OrderResponse } from './schemas.js';

/** orderFromBody builds the order a validated `POST /order` body describes. */
export function orderFromBody(body: OrderBody): Order {
  return {
    id: body.order_id,
    amount: body.amount,
    failStep: body.fail_step,
    delayMs: body.delay_ms,
    failCompensation: body.fail_compensation,
  };
}

/**
 * toResponse turns an outcome (live, or as recorded by the order ledger) into the response
 * body, durations rounded to microseconds.
 */
export function toResponse(
  orderId: string,
  outcome: OrderOutcome | RecordedOutcome,
): OrderResponse {
  const body: OrderResponse = {
    status: outcome.status,
    order_id: orderId,
    steps: outcome.steps.map((step) => ({
      name: step.name,
      status: step.status,
      duration_ms: roundMs(step.durationMs),
      ...(step.detail === undefined ? {} : { detail: step.detail }),
      ...('compensation' in step && step.compensation !== undefined
        ? { compensation: step.compensation }
        : {}),
    })),
  };
  if (outcome.error !== undefined) body.error = { ...outcome.error };
  return body;
}
