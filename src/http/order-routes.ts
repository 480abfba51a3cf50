import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { CancelSource } from '../core/cancellation.js';
import { OrderError } from '../order/errors.js';
import type { Order } from '../order/order.js';
import type { OrderService } from '../order/order-service.js';
import type { OrderOutcome } from '../order/pipeline.js';
import { errorBody, statusOf } from './error-catalogue.js';
import { OrderBody, OrderResponse } from './schemas.js';

export interface OrderRoutesOptions {
  service: OrderService;
  requestTimeoutMs: number;
}

const orderMethods = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/**
 * orderRoutes serves `POST /order`: validate the body, run the order under the request
 * deadline and the client's connection, and answer with the outcome and its status.
 */
export const orderRoutes: FastifyPluginCallbackTypebox<OrderRoutesOptions> = (
  app,
  { service, requestTimeoutMs },
  done,
) => {
  app.post(
    '/order',
    {
      schema: {
        body: OrderBody,
        response: { default: OrderResponse },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const order: Order = {
        id: body.order_id,
        amount: body.amount,
        failStep: body.fail_step,
        delayMs: body.delay_ms,
      };
      // The client going away aborts the order at once: its steps stop and a courier slot
      // it holds or waits for is freed.
      const clientGone = new CancelSource();
      const response = reply.raw;
      const onClose = (): void => {
        if (!response.writableFinished) {
          clientGone.abort(new OrderError('canceled', 'the client closed the connection'));
        }
      };
      response.once('close', onClose);
      let outcome: OrderOutcome;
      try {
        outcome = await service.pipeline.run(order, {
          parent: clientGone,
          deadlineMs: requestTimeoutMs,
        });
      } finally {
        response.off('close', onClose);
      }
      const status = outcome.error === undefined ? 200 : statusOf[outcome.error.kind];
      return reply.code(status).send(toResponse(order.id, outcome));
    },
  );

  app.route({
    method: [...orderMethods],
    url: '/order',
    handler: (_request, reply) =>
      reply
        .code(405)
        .header('allow', 'POST')
        .send(errorBody('method_not_allowed', 'use POST for /order')),
  });

  done();
};

/** toResponse turns an outcome into the response body, durations rounded to microseconds. */
export function toResponse(orderId: string, outcome: OrderOutcome): OrderResponse {
  const body: OrderResponse = {
    status: outcome.status,
    order_id: orderId,
    steps: outcome.steps.map((step) => ({
      name: step.name,
      status: step.status,
      duration_ms: Math.round(step.durationMs * 1000) / 1000,
      ...(step.detail === undefined ? {} : { detail: step.detail }),
    })),
  };
  if (outcome.error !== undefined) body.error = outcome.error;
  return body;
}
