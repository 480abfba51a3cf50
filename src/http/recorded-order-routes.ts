import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { kindMessage } from '../order/errors.js';
import type { OrderService } from '../service/order-service.js';
import { errorBody } from './error-catalogue.js';
import { toRecordedOrder } from './order-mapping.js';
import { OrderResponse, RecordedOrder, maxOrderIdLength } from './schemas.js';

/**
 * recordedOrderRoutes serves `GET /order/:order_id`: the most recent run of the order as
 * recorded, with each step's outcome and the live state of its compensation (retries after
 * the answer show here); an unknown id is 404 `not_found`.
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
      let run;
      try {
        run = await service.ledger.get(request.params.order_id);
      } catch (error) {
        request.log.error({ err: error }, 'order store failed');
        return reply.code(503).send(errorBody('unavailable', kindMessage('unavailable')));
      }
      if (run === undefined) {
        return reply.code(404).send(errorBody('not_found', 'no such order'));
      }
      return reply.send(toRecordedOrder(run, stepNames));
    },
  );
  done();
};
