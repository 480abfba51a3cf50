import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { ClusterViews } from '../observability/cluster-views.js';
import type { Observability } from '../observability/observability.js';
import type { OrderService } from '../service/order-service.js';
import { adminRoutes } from './admin-routes.js';
import { benchFloorRoute } from './bench-floor-route.js';
import { dashboardRoutes } from './dashboard/dashboard-routes.js';
import {
  answerClientError,
  answerFrameworkError,
  answerRequestError,
  bodyLimitBytes,
} from './edge-errors.js';
import { sendError } from './error-catalogue.js';
import { healthRoutes } from './health-routes.js';
import { strictJsonBodies } from './json-body.js';
import { metricsRoute } from './metrics-route.js';
import { openapiRoute } from './openapi-route.js';
import { orderRoutes } from './order-routes.js';
import { recordedOrderRoutes } from './recorded-order-routes.js';
import { requestLog } from './request-log.js';
import { maxOrderIdLength } from './schemas.js';
import { formatValidationError } from './validation-errors.js';

export { bodyLimitBytes };

export interface AppOptions {
  /** The order service: every route answers through it. */
  service: OrderService;
  /** A pino logger; defaults to no logging. */
  logger?: FastifyBaseLogger;
  /** Timeouts and sizes of the HTTP server; Node's and Fastify's defaults when absent. */
  serverLimits?: ServerLimits | undefined;
  /**
   * Metrics (`GET /metrics`) and the dashboard (`GET /`) of the service, as built by
   * `observeOrderService`; none by default. The app closes it when it closes.
   */
  observability?: Observability | undefined;
  /**
   * In a worker of `WORKERS=N`, the views of every worker: `/metrics` and `/dashboard/state`
   * then answer for all workers, not only the one that took the connection. None by default.
   */
  clusterViews?: ClusterViews | undefined;
  /**
   * Serves `POST /bench/floor`, which validates nothing and answers a fixed small JSON body:
   * the framework floor the benchmarks compare `POST /order` with. Off by default.
   */
  benchFloorRoute?: boolean | undefined;
  /** The operator token of the operator actions; none (actions disabled) by default. */
  adminToken?: string | undefined;
  /**
   * Whether `fail_step`, `delay_ms` and `fail_compensation` are taken: they drive the simulated
   * steps only, so with real upstreams they are refused 400 `bad_request`. True by default.
   */
  simulationFields?: boolean | undefined;
}

/**
 * ServerLimits bound what a client may hold of the server. A request whose headers are not
 * complete within `headersTimeoutMs` (a slowloris) or that is not complete within
 * `bodyTimeoutMs` gets 408 and its connection is closed; an idle keep-alive connection is
 * closed after `keepAliveTimeoutMs`; a request head over `maxHeaderSizeBytes` gets 431.
 * `headersTimeoutMs` must not exceed `bodyTimeoutMs` (Node throws).
 */
export interface ServerLimits {
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxHeaderSizeBytes: number;
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/**
 * buildApp builds the HTTP application around an order service. It never listens: the
 * server owns listening and shutdown, and tests call `app.inject`.
 */
export function buildApp(options: AppOptions): App {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit: bodyLimitBytes,
    return503OnClosing: true,
    // One line per request, written when it completes (see the onResponse hook below).
    logController: new LogController({ disableRequestLogging: true }),
    // Long enough for the longest order id percent-encoded (up to 12 characters each), so
    // `GET /order/:order_id` validates it against the schema instead of the router cutting it.
    routerOptions: { maxParamLength: 12 * maxOrderIdLength },
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
    ...(options.serverLimits ? serverOptions(options.serverLimits) : {}),
    ajv: {
      // Validate exactly what the client sent: no coercion, no silently dropped fields.
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false },
    },
    schemaErrorFormatter: formatValidationError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Orders are JSON only: any other content type is answered 415.
  app.removeContentTypeParser('text/plain');
  strictJsonBodies(app);
  requestLog(app);
  app.setErrorHandler(answerRequestError);
  app.setNotFoundHandler((_request, reply) => sendError(reply, 'not_found', 'no such route'));
  // First: the OpenAPI document sees only the routes registered after it.
  app.register(openapiRoute);
  app.register(healthRoutes, { service: options.service });
  if (options.benchFloorRoute === true) app.register(benchFloorRoute);

  const { observability } = options;
  if (observability !== undefined) {
    const { metrics, recentOrders } = observability;
    if (metrics !== undefined) {
      app.register(metricsRoute, { metrics, clusterViews: options.clusterViews });
    }
    if (recentOrders !== undefined) {
      app.register(dashboardRoutes, {
        recentOrders,
        service: options.service,
        operatorActions: options.adminToken !== undefined,
        clusterViews: options.clusterViews,
      });
    }
    app.addHook('onClose', () => observability.close());
  }

  app.register(orderRoutes, {
    service: options.service,
    metrics: observability?.metrics,
    simulationFields: options.simulationFields ?? true,
  });
  app.register(adminRoutes, { service: options.service, adminToken: options.adminToken });
  app.register(recordedOrderRoutes, { service: options.service });

  return app;
}

/**
 * serverOptions turns the limits into Fastify's server options. Node checks the headers and
 * request timeouts on an interval (30 s by default); it is shortened so a slow client is cut
 * within a fraction of its timeout rather than up to 30 s late.
 */
function serverOptions(limits: ServerLimits) {
  const checkEveryMs = Math.min(1000, Math.max(10, Math.floor(limits.headersTimeoutMs / 4)));
  return {
    requestTimeout: limits.bodyTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.bodyTimeoutMs,
      maxHeaderSize: limits.maxHeaderSizeBytes,
      connectionsCheckingInterval: checkEveryMs,
    },
  };
}
