import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { OrderService } from '../service/order-service.js';
import { sendError } from './error-catalogue.js';
import { errorResponses, otherErrors, retryAfter } from './error-responses.js';
import { toRecordedOrder } from './order-mapping.js';
import { RecordedOrder, maxOrderIdLength } from './schemas.js';

/**
 * recordedOrderRoutes serves `GET /order/:order_id`: the most recent run of the order as
 * recorded, with each step's outcome and the live state of its compensation (retries after
 * the answer show here); an unknown id is 404 `not_found`, a store that cannot answer 503
 * `unavailable` with `Retry-After` (through the app's error handler).
 */
export const recordedOrderRoutes: FastifyPluginCallbackTypebox<{ service: OrderService }> = (
  app,
  { service },
  done,
) => {
  const { stepNames } = service;
  app.get(
    '/order/:order_id',
    {
      schema: {
        summary: 'An order as recorded',
        description:
          "The most recent run of the order: its state, each step's outcome and where the " +
          'undoing of each step stands (retries after the answer show here).',
        params: Type.Object({
          order_id: Type.String({ minLength: 1, maxLength: maxOrderIdLength }),
        }),
        response: {
          200: { ...RecordedOrder, description: 'The most recent run of the order.' },
          ...errorResponses(['bad_request', 'not_found', 'internal', 'unavailable'], {
            'retry-after': retryAfter('unavailable'),
          }),
          default: otherErrors,
        },
      },
    },
    async (request, reply) => {
      const run = await service.recordedRun(request.params.order_id);
      if (run === undefined) return sendError(reply, 'not_found', 'no such order');
      return reply.send(toRecordedOrder(run, stepNames));
    },
  );
  done();
};
