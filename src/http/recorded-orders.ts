import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import { isErrorKind, kindMessage } from '../order/errors.js';
import type { OrderLedger, SubmitResult } from '../store/order-ledger.js';
import type { StoredOrder } from '../store/order-store.js';
import { errorBody, statusOf } from './error-catalogue.js';
import type { Order } from '../order/order.js';
import { roundMs } from '../observability/order-log.js';
import { orderFromBody, toResponse } from './order-mapping.js';
import { OrderBody, OrderResponse } from './schemas.js';

/**
 * sendSubmitResult answers `POST /order` for the order ledger's decision: the outcome (its
 * status from the error catalogue, `Idempotent-Replayed: true` unless this request executed
 * it), 422 `idempotency_conflict`, or 409 `order_in_progress` with `Retry-After`.
 */
export function sendSubmitResult(
  reply: FastifyReply,
  orderId: string,
  result: SubmitResult,
): FastifyReply {
  switch (result.kind) {
    case 'conflict':
      return reply
        .code(statusOf.idempotency_conflict)
        .send(
          errorBody(
            'idempotency_conflict',
            `order_id ${JSON.stringify(orderId)} was already used with a different request`,
          ),
        );
    case 'in_progress':
      return reply
        .code(statusOf.order_in_progress)
        .header('idempotent-replayed', 'true')
        .header('retry-after', String(result.retryAfterSeconds))
        .send(errorBody('order_in_progress', kindMessage('order_in_progress')));
    case 'outcome': {
      const kind = result.outcome.error?.kind;
      if (result.replayed) void reply.header('idempotent-replayed', 'true');
      return reply
        .code(kind === undefined ? 200 : statusOfRecorded(kind))
        .send(toResponse(orderId, result.outcome));
    }
  }
}

const RecordedStep = Type.Object({
  name: Type.String(),
  status: Type.String(),
  duration_ms: Type.Optional(Type.Number()),
  detail: Type.Optional(Type.String()),
  compensation: Type.String(),
  compensation_attempts: Type.Integer(),
  compensation_error: Type.Optional(Type.String()),
  next_compensation_at: Type.Optional(Type.String()),
  needs_operator: Type.Boolean(),
  updated_at: Type.String(),
});

/** RecordedOrder is the body of `GET /order/:order_id`: the order as the store holds it. */
export const RecordedOrder = Type.Object({
  order_id: Type.String(),
  state: Type.Union([Type.Literal('running'), Type.Literal('finished')]),
  status: Type.Union([Type.Literal('running'), Type.Literal('ok'), Type.Literal('error')]),
  attempt: Type.Integer(),
  error: Type.Optional(Type.Object({ kind: Type.String() })),
  needs_operator: Type.Boolean(),
  steps: Type.Array(RecordedStep),
  created_at: Type.String(),
  updated_at: Type.String(),
  finished_at: Type.Optional(Type.String()),
});

/**
 * recordedOrderRoutes serves `GET /order/:order_id`: the recorded order with each step's
 * outcome and compensation (live: retries after the answer show here), timestamps in ISO
 * 8601; an unknown id is 404 `not_found`.
 */
export const recordedOrderRoutes: FastifyPluginCallbackTypebox<{ ledger: OrderLedger }> = (
  app,
  { ledger },
  done,
) => {
  app.get(
    '/order/:order_id',
    {
      schema: {
        params: Type.Object({ order_id: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: { 200: RecordedOrder, default: OrderResponse },
      },
    },
    async (request, reply) => {
      const order = await ledger.get(request.params.order_id);
      if (order === undefined) {
        return reply.code(404).send(errorBody('not_found', 'no such order'));
      }
      return reply.send(toRecordedOrder(order));
    },
  );
  done();
};

function toRecordedOrder(order: StoredOrder): typeof RecordedOrder.static {
  const iso = (ms: number): string => new Date(ms).toISOString();
  const finished = order.state === 'finished';
  return {
    order_id: order.orderId,
    state: order.state,
    status: !finished ? 'running' : order.errorKind === undefined ? 'ok' : 'error',
    attempt: order.attempt,
    ...(order.errorKind === undefined ? {} : { error: { kind: order.errorKind } }),
    needs_operator: order.steps.some((step) => step.needsOperator),
    steps: order.steps.map((step) => ({
      name: step.name,
      status: step.status,
      ...(step.durationMs === undefined ? {} : { duration_ms: roundMs(step.durationMs) }),
      ...(step.detail === undefined ? {} : { detail: step.detail }),
      compensation: step.compensation,
      compensation_attempts: step.compensationAttempts,
      ...(step.compensationError === undefined
        ? {}
        : { compensation_error: step.compensationError }),
      ...(step.nextCompensationAt === undefined || step.compensation === 'compensated'
        ? {}
        : { next_compensation_at: iso(step.nextCompensationAt) }),
      needs_operator: step.needsOperator,
      updated_at: iso(step.updatedAt),
    })),
    created_at: iso(order.createdAt),
    updated_at: iso(order.updatedAt),
    ...(order.finishedAt === undefined ? {} : { finished_at: iso(order.finishedAt) }),
  };
}

/** A kind read back from the store may predate this build: unknown kinds answer 500. */
function statusOfRecorded(kind: string): number {
  return isErrorKind(kind) ? statusOf[kind] : 500;
}

/**
 * orderFromRecordedRequest rebuilds an order from a request body read back from the store
 * (recovery, compensation retries). Throws a TypeError if it is not a valid body.
 */
export function orderFromRecordedRequest(request: unknown): Order {
  // The body was validated against OrderBody before it was recorded; this guards against a
  // foreign or damaged record, not against a client.
  if (!isRecordedBody(request)) throw new TypeError('recorded request is not an order body');
  return orderFromBody(request);
}

// Only the fields an order cannot be built without are checked: TypeBox's Value.Check cannot
// check OrderBody (its step-name enum is an Unsafe schema, written for Ajv's messages).
function isRecordedBody(request: unknown): request is OrderBody {
  if (typeof request !== 'object' || request === null) return false;
  return (
    'order_id' in request &&
    typeof request.order_id === 'string' &&
    'amount' in request &&
    typeof request.amount === 'number'
  );
}
