import type { FastifyPluginCallback } from 'fastify';
import { errorResponses } from './error-responses.js';
import { statusBody } from './schemas.js';

/**
 * benchFloorRoute serves `POST /bench/floor`: the framework floor the benchmarks compare
 * `POST /order` with. The same server, hooks, JSON body parsing and response serialization
 * as an order, but no body schema and no order: it answers a fixed small body.
 */
export const benchFloorRoute: FastifyPluginCallback = (app, _options, done) => {
  app.post(
    '/bench/floor',
    {
      schema: {
        summary: 'Benchmark floor',
        description:
          'Served only with `BENCH_FLOOR_ROUTE`: takes any JSON body and answers at once, so ' +
          "benchmarks can tell the framework's cost from the order's.",
        response: {
          200: statusBody('ok', 'The body was parsed.'),
          ...errorResponses(['bad_request', 'payload_too_large', 'unsupported_media_type']),
        },
      },
    },
    () => ({ status: 'ok' }),
  );
  done();
};
