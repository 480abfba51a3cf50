import type { FastifyPluginCallback } from 'fastify';
import type { OrderMetrics } from '../observability/metrics.js';
import { errorResponses } from './error-responses.js';

export interface MetricsRouteOptions {
  metrics: OrderMetrics;
}

/** metricsRoute serves `GET /metrics`: every metric in the Prometheus text format. */
export const metricsRoute: FastifyPluginCallback<MetricsRouteOptions> = (
  app,
  { metrics },
  done,
) => {
  const schema = {
    summary: 'Metrics',
    description: 'Every metric of the service, in the Prometheus text format.',
    response: {
      200: {
        description: 'The metrics.',
        content: { [metrics.registry.contentType]: { schema: { type: 'string' } } },
      },
      ...errorResponses(['internal']),
    },
  };
  app.get('/metrics', { schema }, async (_request, reply) => {
    const body = await metrics.scrape();
    return reply.header('content-type', metrics.registry.contentType).send(body);
  });
  done();
};
