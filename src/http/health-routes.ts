import type { FastifyPluginCallback } from 'fastify';
import type { OrderService } from '../service/order-service.js';
import { sendError } from './error-catalogue.js';
import { errorResponses } from './error-responses.js';
import { statusBody } from './schemas.js';

/**
 * healthRoutes serves `GET /healthz` (200 while the process serves at all) and `GET /readyz`:
 * 200 `ready` while orders are taken; 503 `shutting_down` once the service drains, so a load
 * balancer stops sending orders while the ones in flight finish, and 503 `unavailable` while
 * a part outside the process (the shared courier pool) cannot serve.
 */
export const healthRoutes: FastifyPluginCallback<{ service: OrderService }> = (
  app,
  { service },
  done,
) => {
  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness',
        description: 'Answers 200 while the process serves at all, draining included.',
        response: { 200: statusBody('ok', 'The process serves.') },
      },
    },
    () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness',
        description:
          'Answers 200 while orders are taken; 503 once the service drains, or while a part ' +
          'outside the process (the shared courier pool) cannot serve.',
        response: {
          200: statusBody('ready', 'Orders are taken.'),
          ...errorResponses(['shutting_down', 'unavailable']),
        },
      },
    },
    (_request, reply) => {
      const readiness = service.readiness();
      if (!readiness.ready) return sendError(reply, readiness.kind, readiness.message);
      return reply.send({ status: 'ready' });
    },
  );
  done();
};
