import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger } from 'fastify';
import { CancelSource, link } from '../core/cancellation.js';
import { OrderError } from '../order/errors.js';
import type { OrderService } from '../order/order-service.js';
import { logOrderSummary, withOrderId } from '../observability/order-log.js';
import type { OrderOutcome } from '../order/pipeline.js';
import type { OrderLedger, SubmitResult } from '../store/order-ledger.js';
import { errorBody, statusOf } from './error-catalogue.js';
import { orderFromBody, toResponse } from './order-mapping.js';
import { sendSubmitResult } from './recorded-orders.js';
import { OrderBody, OrderResponse } from './schemas.js';

export interface OrderRoutesOptions {
  service: OrderService;
  requestTimeoutMs: number;
  /** Makes submission exactly-once over a durable store; absent runs every request as is. */
  ledger?: OrderLedger | undefined;
}

const orderMethods = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/**
 * orderRoutes serves `POST /order`: validate the body, run the order under the request
 * deadline and the client's connection, and answer with the outcome and its status.
 */
export const orderRoutes: FastifyPluginCallbackTypebox<OrderRoutesOptions> = (
  app,
  { service, requestTimeoutMs, ledger },
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
      const order = orderFromBody(body);
      // Every line about this order carries its id, the framework's `request completed` too.
      const log = withOrderId(request.log, order.id);
      request.log = log;
      reply.log = log;
      // Refused before any step starts: nothing is attempted, nothing in flight is touched.
      const admitted = service.admission?.admit();
      if (admitted?.admitted === false) {
        const { kind, message } = admitted.error;
        return reply
          .code(statusOf[kind])
          .header('retry-after', String(admitted.retryAfterSeconds))
          .send(errorBody(kind, message));
      }
      // The client going away aborts the order at once: its steps stop and a courier slot
      // it holds or waits for is freed. So does a shutdown whose drain deadline has passed.
      const clientGone = new CancelSource();
      const unlinkShutdown =
        service.admission === undefined
          ? undefined
          : link(service.admission.cancellation, clientGone);
      const response = reply.raw;
      const onClose = (): void => {
        if (!response.writableFinished) {
          clientGone.abort(new OrderError('canceled', 'the client closed the connection'));
        }
      };
      response.once('close', onClose);
      let outcome: OrderOutcome | SubmitResult;
      try {
        const runOptions = { parent: clientGone, deadlineMs: requestTimeoutMs };
        outcome =
          ledger === undefined
            ? await service.pipeline.run(order, runOptions)
            : await ledger.submit(order, body, runOptions);
      } finally {
        response.off('close', onClose);
        unlinkShutdown?.();
        admitted?.release();
      }
      if ('kind' in outcome) {
        if (outcome.kind === 'outcome') logOrderSummary(log, outcome.outcome, outcome.replayed);
        return sendSubmitResult(reply, order.id, outcome);
      }
      logOrderSummary(log, outcome);
      logOutcome(log, outcome);
      // The order is over; a client leaving while its answer is written cannot undo it, so
      // this is logged as an undelivered answer, with the order's real outcome.
      response.once('close', () => {
        if (!response.writableFinished) {
          log.info({ outcome: outcome.status }, 'answer not delivered');
        }
      });
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

/**
 * logOutcome logs what needs a human's eye: an order canceled (by its client or a shutdown)
 * at info, and steps abandoned because they ignored the abort at warn. `log` is the order's
 * logger, which carries `order_id`.
 */
function logOutcome(log: FastifyBaseLogger, outcome: OrderOutcome): void {
  const kind = outcome.error?.kind;
  if (kind === 'canceled' || kind === 'shutting_down') {
    log.info({ kind }, 'order canceled');
  }
  const abandoned = outcome.steps.filter((step) => step.status === 'abandoned');
  if (abandoned.length > 0) {
    log.warn(
      { abandoned: abandoned.map((step) => step.name) },
      'steps ignored the abort and were abandoned',
    );
  }
}
