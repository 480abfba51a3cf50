import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { CancelSource } from '../core/cancellation.js';
import type { OrderMetrics } from '../observability/metrics.js';
import { withOrderId } from '../observability/order-log.js';
import { OrderError, errorKinds, ranKinds } from '../order/errors.js';
import type { OrderAnswer } from '../service/order-answer.js';
import type { OrderService } from '../service/order-service.js';
import { answerRequestError } from './edge-errors.js';
import { sendError, statusOf } from './error-catalogue.js';
import {
  errorResponses,
  otherErrors,
  retryAfter,
  type DocumentedHeader,
} from './error-responses.js';
import { orderFromBody, toResponse } from './order-mapping.js';
import { OrderBody, OrderHeaders, OrderResponse } from './schemas.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** When the request arrived (`performance.now()`); set on the order route only. */
    receivedAt: number | undefined;
  }
}

export interface OrderRoutesOptions {
  service: OrderService;
  /** Count every answer of `POST /order`, refusals at the edge included; none by default. */
  metrics?: OrderMetrics | undefined;
  /** Whether the fields that drive the simulated steps are taken (else 400). */
  simulationFields: boolean;
}

/** The body fields that drive the simulated steps only. */
const simulationFieldNames = ['fail_step', 'delay_ms', 'fail_compensation'] as const;

const orderMethods = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/**
 * Every error kind `POST /order` may answer: any kind of the service's, and those of a
 * request refused before it reaches the route.
 */
const orderErrorKinds = [
  ...errorKinds,
  'request_timeout',
  'payload_too_large',
  'unsupported_media_type',
  'headers_too_large',
] as const;

/**
 * The kinds of an order that ran, whose outcome is recorded: a repeat of its key (or a request
 * that joined it) may be answered with it.
 */
const recordedKinds = [...ranKinds, 'interrupted'] as const;

/** `idempotent-replayed` comes with success and every outcome that was recorded. */
const replayedHeader: DocumentedHeader = {
  description:
    '`true` when the answer is the recorded outcome of an earlier request with the same ' +
    '`Idempotency-Key`; absent otherwise.',
  kinds: recordedKinds,
};

/** `order-needs-operator` comes with a replayed failure whose compensation is flagged. */
const needsOperatorHeader: DocumentedHeader = {
  description:
    '`true` when the replayed run has a compensation flagged for an operator: nothing ' +
    'happens to it until an operator settles it (`GET /order/{order_id}` shows which step); ' +
    'absent otherwise.',
  kinds: recordedKinds,
};

/**
 * orderRoutes serves `POST /order`: validate the body and the `Idempotency-Key`, hand the
 * order to the service with the client's connection as its parent cancellation, and answer
 * with the service's answer and its status. The deadline runs from the moment the request
 * arrived.
 */
export const orderRoutes: FastifyPluginCallbackTypebox<OrderRoutesOptions> = (
  app,
  { service, metrics, simulationFields },
  done,
) => {
  app.decorateRequest('receivedAt', undefined);
  // An order refused before it reaches the service (its body, its type, its size) is
  // counted where its kind is known.
  const refusalsCounted =
    metrics === undefined
      ? {}
      : {
          errorHandler: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) =>
            answerRequestError(error, request, reply, (kind) => {
              metrics.recordRefusal(kind);
            }),
        };
  app.post(
    '/order',
    {
      schema: {
        summary: 'Place an order',
        description:
          "Runs the order's steps concurrently and answers with each step's outcome. The " +
          'first failure or the deadline cancels the other steps and undoes those that ran. ' +
          'With an `Idempotency-Key`, a repeat of the same request is answered from the ' +
          'record instead of running again.',
        body: OrderBody,
        headers: OrderHeaders,
        response: {
          200: {
            ...OrderResponse,
            description: 'The order ran and every step succeeded.',
            headers: {
              'idempotent-replayed': { type: 'string', description: replayedHeader.description },
            },
          },
          ...errorResponses(orderErrorKinds, {
            'idempotent-replayed': replayedHeader,
            'order-needs-operator': needsOperatorHeader,
            'retry-after': retryAfter(
              'order_in_progress',
              'overloaded',
              'shutting_down',
              'unavailable',
              'interrupted',
            ),
          }),
          default: otherErrors,
        },
      },
      onRequest: (request, _reply, next) => {
        request.receivedAt = performance.now();
        next();
      },
      ...refusalsCounted,
    },
    async (request, reply) => {
      const { body } = request;
      // The list of the fields given is built only for the message of a refusal.
      if (!simulationFields && simulationFieldNames.some((name) => body[name] !== undefined)) {
        const simulated = simulationFieldNames.filter((name) => body[name] !== undefined);
        return sendError(
          reply,
          'bad_request',
          `${simulated.join(', ')}: drive the simulated steps only, and this service calls real upstreams`,
          { orderId: body.order_id },
        );
      }
      const order = orderFromBody(body);
      // Every line about this order carries its id, the request's summary line too.
      const log = withOrderId(request.log, order.id);
      request.log = log;
      reply.log = log;
      log.debug('order received');
      // The client going away aborts the order at once: its steps stop and a courier slot
      // it holds or waits for is freed. Once answered, the order is over: a client leaving
      // while its answer is written cannot undo it, so that is logged as an undelivered
      // answer, with the order's real outcome.
      const clientGone = new CancelSource();
      const response = reply.raw;
      let answer: OrderAnswer | undefined = undefined;
      response.once('close', () => {
        if (response.writableFinished) return;
        if (answer === undefined) {
          clientGone.abort(new OrderError('canceled', 'the client closed the connection'));
        } else {
          log.info({ outcome: answer.outcome?.status ?? 'error' }, 'answer not delivered');
        }
      });
      answer = await service.submit({
        order,
        idempotencyKey: unquoted(request.headers['idempotency-key']),
        body,
        parent: clientGone,
        receivedAt: request.receivedAt,
      });
      reply.orderAnswer = answer;
      metrics?.recordAnswer(answer);
      logNotable(log, answer);
      if (answer.replayed) void reply.header('idempotent-replayed', 'true');
      if (answer.needsOperator === true) void reply.header('order-needs-operator', 'true');
      if (answer.retryAfterSeconds !== undefined) {
        void reply.header('retry-after', String(answer.retryAfterSeconds));
      }
      const status = answer.error === undefined ? 200 : statusOf[answer.error.kind];
      return reply.code(status).send(toResponse(order.id, answer));
    },
  );

  app.route({
    method: [...orderMethods],
    url: '/order',
    schema: {
      summary: 'Orders are placed with POST',
      description: 'Any other method on `/order` is answered 405 with `Allow: POST`.',
      response: errorResponses(['method_not_allowed'], {
        allow: { description: 'The method the path takes: `POST`.', kinds: ['method_not_allowed'] },
      }),
    },
    handler: async (_request, reply) =>
      sendError(reply.header('allow', 'POST'), 'method_not_allowed', 'use POST for /order'),
  });

  done();
};

/** unquoted is an `Idempotency-Key` without the double quotes of its string form. */
function unquoted(key: string | undefined): string | undefined {
  return key?.startsWith('"') === true ? key.slice(1, -1) : key;
}

/**
 * logNotable logs what needs a human's eye: an order canceled (by its client or a shutdown)
 * at info, and steps abandoned because they ignored the abort at warn. `log` is the order's
 * logger, which carries `order_id`.
 */
function logNotable(log: FastifyBaseLogger, answer: OrderAnswer): void {
  if (answer.replayed || answer.outcome === undefined) return;
  const kind = answer.error?.kind;
  if (kind === 'canceled' || kind === 'shutting_down') {
    log.info({ kind }, 'order canceled');
  }
  const abandoned = answer.outcome.steps.filter((step) => step.status === 'abandoned');
  if (abandoned.length > 0) {
    log.warn(
      { abandoned: abandoned.map((step) => step.name) },
      'steps ignored the abort and were abandoned',
    );
  }
}
