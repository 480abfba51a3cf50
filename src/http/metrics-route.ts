import type { FastifyPluginCallback } from 'fastify';
import type { OrderMetrics } from '../observability/metrics.js';

export interface MetricsRouteOptions {
  metrics: OrderMetrics;
}

/** metricsRoute serves `GET /metrics`: every metric in the Prometheus text format. */
export const metricsRoute: FastifyPluginCallback<MetricsRouteOptions> = (
  app,
  { metrics },
  done,
) => {
  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.scrape();
    return reply.header('content-type', metrics.registry.contentType).send(body);
  });
  done();
};
