import type { FastifyPluginCallback } from 'fastify';
import type { ClusterViews } from '../observability/cluster-views.js';
import { aggregateMetrics, metricsView, type OrderMetrics } from '../observability/metrics.js';
import { errorResponses } from './error-responses.js';

export interface MetricsRouteOptions {
  metrics: OrderMetrics;
  /**
   * The views of every worker, in a worker of `WORKERS=N`: the route then answers with the
   * metrics of all workers added up, and serves this worker's own to the others. None by
   * default: the metrics of this process.
   */
  clusterViews?: ClusterViews | undefined;
}

/**
 * metricsRoute serves `GET /metrics`: every metric in the Prometheus text format, of this
 * process or, with `clusterViews`, of every worker (see {@link aggregateMetrics}). A scrape
 * that cannot gather the workers' metrics (the primary does not answer) is a 500.
 */
export const metricsRoute: FastifyPluginCallback<MetricsRouteOptions> = (
  app,
  { metrics, clusterViews },
  done,
) => {
  let scrape = (): Promise<string> => metrics.scrape();
  if (clusterViews !== undefined) {
    const stopServing = clusterViews.serve(metricsView, () => metrics.part());
    app.addHook('onClose', (_instance, closed) => {
      stopServing();
      closed();
    });
    scrape = async () => aggregateMetrics(await clusterViews.gather(metricsView));
  }
  const schema = {
    summary: 'Metrics',
    description:
      'Every metric of the service, in the Prometheus text format; with `WORKERS` above 1, ' +
      'of every worker, added up.',
    response: {
      200: {
        description: 'The metrics.',
        content: { [metrics.registry.contentType]: { schema: { type: 'string' } } },
      },
      ...errorResponses(['internal']),
    },
  };
  app.get('/metrics', { schema }, async (_request, reply) => {
    const body = await scrape();
    return reply.header('content-type', metrics.registry.contentType).send(body);
  });
  done();
};
