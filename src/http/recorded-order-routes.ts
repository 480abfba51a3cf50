import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { OrderService } from '../service/order-service.js';
import { sendError } from './error-catalogue.js';
import { toRecordedOrder } from './order-mapping.js';
import { OrderResponse, RecordedOrder, maxOrderIdLength } from './schemas.js';

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
  const { stepNames } = service.pipeline;
  app.get(
    '/order/:order_id',
    {
      schema: {
        params: Type.Object({
          order_id: Type.String({ minLength: 1, maxLength: maxOrderIdLength }),
        }),
        response: { 200: RecordedOrder, default: OrderResponse },
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
