import { needsOperator } from '../ledger/compensation-rules.js';
import type { OrderRun, RecordedOutcome, RecordedStep } from '../ledger/order-store.js';
import type { Order } from '../order/order.js';
import type { OrderAnswer } from '../service/order-answer.js';
import type { OrderBody, OrderResponse, RecordedOrder } from './schemas.js';

/** orderFromBody builds the order a validated `POST /order` body describes. */
export function orderFromBody(body: OrderBody): Order {
  return {
    id: body.order_id,
    amount: body.amount,
    failStep: body.fail_step,
    delayMs: body.delay_ms,
    failCompensation: body.fail_compensation,
    ...(body.details === undefined ? {} : { details: body.details }),
  };
}

/**
 * wholeMs is a duration as the wire carries it: whole milliseconds, truncated, as the
 * original service's `time.Since(start).Milliseconds()`.
 */
export function wholeMs(ms: number): number {
  return Math.trunc(ms);
}

/** toResponse is the body of an answer to `POST /order` for order `orderId`. */
export function toResponse(orderId: string, answer: OrderAnswer): OrderResponse {
  const { outcome, error } = answer;
  if (outcome === undefined) {
    return { status: 'error', order_id: orderId, ...(error === undefined ? {} : { error }) };
  }
  return outcomeBody(orderId, outcome);
}

function outcomeBody(orderId: string, outcome: RecordedOutcome): OrderResponse {
  const body: OrderResponse = {
    status: outcome.status,
    order_id: orderId,
    steps: outcome.steps.map((step) => ({
      name: step.name,
      status: step.status,
      duration_ms: wholeMs(step.durationMs),
      ...(step.detail === undefined ? {} : { detail: step.detail }),
      ...(step.compensation === undefined ? {} : { compensation: step.compensation }),
    })),
  };
  if (outcome.error !== undefined) {
    body.error = { kind: outcome.error.kind, message: outcome.error.message };
  }
  return body;
}

/** ShownStep is a step as `GET /order/:order_id` shows it: recorded, or still running. */
type ShownStep = Omit<RecordedStep, 'status'> & {
  readonly status: RecordedStep['status'] | 'running';
};

/**
 * toRecordedOrder is the body of `GET /order/:order_id`: the run as recorded, each step with
 * its outcome (as answered) and the live state of its compensation, times in ISO 8601. A
 * run still running shows each of `stepNames` as `running`.
 */
export function toRecordedOrder(run: OrderRun, stepNames: readonly string[]): RecordedOrder {
  const iso = (ms: number): string => new Date(ms).toISOString();
  const { outcome } = run;
  const compensations = new Map(run.compensations.map((c) => [c.name, c]));
  // A running run has no outcome yet: each of its steps is running (or was, if it died).
  const steps: readonly ShownStep[] =
    outcome?.steps ?? stepNames.map((name) => ({ name, status: 'running', durationMs: 0 }));
  return {
    order_id: run.orderId,
    run_id: run.runId,
    ...(run.idempotencyKey === undefined ? {} : { idempotency_key: run.idempotencyKey }),
    state: run.state,
    status: outcome?.status ?? 'running',
    attempt: run.attempt,
    ...(outcome?.error === undefined ? {} : { error: { ...outcome.error } }),
    needs_operator: needsOperator(run.compensations),
    steps: steps.map((step) => {
      const compensation = compensations.get(step.name);
      return {
        name: step.name,
        status: step.status,
        duration_ms: wholeMs(step.durationMs),
        ...(step.detail === undefined ? {} : { detail: step.detail }),
        compensation: compensation?.status ?? step.compensation ?? 'not_needed',
        compensation_attempts: compensation?.attempts ?? 0,
        ...(compensation?.lastError === undefined
          ? {}
          : { compensation_error: compensation.lastError }),
        ...(compensation?.nextAttemptAt === undefined || compensation.status === 'compensated'
          ? {}
          : { next_compensation_at: iso(compensation.nextAttemptAt) }),
        needs_operator: compensation?.needsOperator ?? false,
      };
    }),
    created_at: iso(run.createdAt),
    updated_at: iso(run.updatedAt),
    ...(run.finishedAt === undefined ? {} : { finished_at: iso(run.finishedAt) }),
  };
}
