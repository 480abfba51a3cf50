import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { OrderService } from '../service/order-service.js';
import { sendError } from './error-catalogue.js';
import { errorResponses, otherErrors, retryAfter } from './error-responses.js';
import { statusBody } from './schemas.js';

export interface AdminRoutesOptions {
  service: OrderService;
  /** The operator token; undefined disables every operator action. */
  adminToken: string | undefined;
}

/**
 * adminRoutes serves the operator actions: `POST
 * /admin/runs/:run_id/compensations/:step/settle` records that an operator settled a
 * compensation flagged after its last attempt (200), or answers 404 `not_found` if there is
 * no such flag. Every action requires `Authorization: Bearer <ADMIN_TOKEN>`; without it, with
 * a wrong token, or with no token configured, 401 `unauthorized`.
 */
export const adminRoutes: FastifyPluginCallbackTypebox<AdminRoutesOptions> = (
  app,
  { service, adminToken },
  done,
) => {
  const expected = adminToken === undefined ? undefined : digest(adminToken);
  app.post(
    '/admin/runs/:run_id/compensations/:step/settle',
    {
      schema: {
        summary: 'Settle a flagged compensation',
        description:
          'Records that an operator settled by hand the compensation of `step` in run ' +
          '`run_id`, flagged after its last attempt failed.',
        security: [{ operatorToken: [] }],
        params: Type.Object({
          run_id: Type.String({ minLength: 1, maxLength: 64 }),
          step: Type.String({ minLength: 1, maxLength: 64 }),
        }),
        response: {
          200: statusBody('ok', 'The flag is settled.'),
          ...errorResponses(
            ['bad_request', 'unauthorized', 'not_found', 'internal', 'unavailable'],
            {
              'www-authenticate': {
                description: '`Bearer` when a token was required and none valid was given.',
                kinds: ['unauthorized'],
              },
              'retry-after': retryAfter('unavailable'),
            },
          ),
          default: otherErrors,
        },
      },
    },
    async (request, reply) => {
      if (expected === undefined) {
        return sendError(reply, 'unauthorized', 'operator actions are disabled: set ADMIN_TOKEN');
      }
      const given = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
      // Compared as digests of equal length, in constant time.
      if (given === undefined || !timingSafeEqual(digest(given), expected)) {
        return sendError(
          reply.header('www-authenticate', 'Bearer'),
          'unauthorized',
          'a valid operator token is required',
        );
      }
      const { run_id: runId, step } = request.params;
      if (!(await service.settleFlag(runId, step))) {
        return sendError(reply, 'not_found', 'no flagged compensation there');
      }
      return reply.send({ status: 'ok' });
    },
  );
  done();
};

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
