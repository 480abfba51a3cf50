import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, {
  LogController,
  type ConnectionError,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { OrderAnswer } from '../ledger/order-answer.js';
import type { Observability } from '../observability/observability.js';
import { orderSummary } from '../observability/order-log.js';
import { RefusalLog } from '../observability/refusal-log.js';
import type { OrderService } from '../service/order-service.js';
import { adminRoutes } from './admin-routes.js';
import { dashboardRoutes } from './dashboard/dashboard-routes.js';
import { errorBody, statusOf, type HttpErrorKind } from './error-catalogue.js';
import { BadBodyError, strictJsonBodies } from './json-body.js';
import { metricsRoute } from './metrics-route.js';
import { orderRoutes } from './order-routes.js';
import { recordedOrderRoutes } from './recorded-order-routes.js';
import { maxOrderIdLength } from './schemas.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** When the request arrived (`performance.now()`); set on the order route only. */
    receivedAt: number | undefined;
  }
  interface FastifyReply {
    /** The answer to the order of this request, if any: its log line tells of it. */
    orderAnswer: OrderAnswer | undefined;
  }
}

/** Log levels at which the per-request line (info) is not written. */
const quietLevels = new Set(['silent', 'fatal', 'error', 'warn']);

/** The largest request body accepted, in bytes. */
export const bodyLimitBytes = 64 * 1024;

export interface AppOptions {
  /** The order service: `POST /order` submits to it, `GET /order/:order_id` reads its ledger. */
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
   * Serves `POST /bench/floor`, which validates nothing and answers a fixed small JSON body:
   * the framework floor the benchmarks compare `POST /order` with. Off by default.
   */
  benchFloorRoute?: boolean | undefined;
  /** The operator token of the operator actions; none (actions disabled) by default. */
  adminToken?: string | undefined;
  /** Whether the service's dependencies can serve (the shared courier pool); yes by default. */
  ready?: (() => boolean) | undefined;
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
    schemaErrorFormatter: (errors, dataVar) => {
      const first = errors[0];
      if (first === undefined) return new Error(`${dataVar} is invalid`);
      const where = `${dataVar}${first.instancePath}`;
      const unknownField = first.params['additionalProperty'];
      if (first.keyword === 'additionalProperties' && typeof unknownField === 'string') {
        return new Error(`${where} has an unknown field ${JSON.stringify(unknownField)}`);
      }
      if (first.keyword === 'pattern' && dataVar === 'headers') {
        return new Error(
          'Idempotency-Key must be 1 to 255 visible ASCII characters, bare or in double quotes',
        );
      }
      if (first.keyword === 'pattern') {
        return new Error(`${where} must not contain control characters`);
      }
      return new Error(`${where} ${first.message ?? 'is invalid'}`);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Orders are JSON only: any other content type is answered 415.
  app.removeContentTypeParser('text/plain');
  strictJsonBodies(app);
  app.decorateRequest('receivedAt', undefined);
  app.decorateReply('orderAnswer', undefined);
  // Refusals for overload are counted into one line per second, not a line each.
  const refusals = new RefusalLog(app.log);
  app.addHook('onClose', (_instance, done) => {
    refusals.close();
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const answer = reply.orderAnswer;
    if (
      answer !== undefined &&
      answer.outcome === undefined &&
      answer.error?.kind === 'overloaded'
    ) {
      refusals.count();
      done();
      return;
    }
    // Built only when written: at warn and above this costs one set lookup.
    if (quietLevels.has(request.log.level)) {
      done();
      return;
    }
    request.log.info(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        response_time_ms: Math.round(reply.elapsedTime * 1000) / 1000,
        ...(answer === undefined ? {} : orderSummary(answer)),
      },
      'request completed',
    );
    done();
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { kind, message } = classifyRequestError(error);
    if (statusOf[kind] >= 500) {
      request.log.error({ err: error }, 'request failed');
    }
    return reply.code(statusOf[kind]).send(errorBody(kind, message));
  });

  app.setNotFoundHandler((_request, reply) =>
    reply.code(404).send(errorBody('not_found', 'no such route')),
  );

  app.get('/healthz', () => ({ status: 'ok' }));

  if (options.benchFloorRoute === true) {
    // Same server, hooks and JSON body parsing as an order; no schema, no order.
    app.post('/bench/floor', () => ({ status: 'ok' }));
  }

  const { observability } = options;
  if (observability !== undefined) {
    const { metrics, recentOrders } = observability;
    if (metrics !== undefined) app.register(metricsRoute, { metrics });
    if (recentOrders !== undefined) {
      app.register(dashboardRoutes, {
        recentOrders,
        service: options.service,
        operatorActions: options.adminToken !== undefined,
      });
    }
    app.addHook('onClose', () => observability.close());
  }

  // Ready while orders are admitted; 503 once the service drains, so a load balancer stops
  // sending orders while the ones in flight finish. /healthz stays 200 meanwhile.
  app.get('/readyz', (_request, reply) => {
    if (options.service.admission.closed) {
      return reply.code(503).send(errorBody('shutting_down', 'the service is draining'));
    }
    if (options.ready?.() === false) {
      return reply.code(503).send(errorBody('unavailable', 'the courier pool is unavailable'));
    }
    return reply.send({ status: 'ready' });
  });

  app.register(orderRoutes, { service: options.service });
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

/**
 * answerClientError answers what Node's HTTP parser refuses before any route sees it (headers
 * not complete in time, a head too large, a malformed request) in the service's error shape,
 * then closes the connection, as Fastify's default handler does. A connection already reset
 * or destroyed gets nothing.
 */
function answerClientError(error: ConnectionError, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const { kind, message } = clientErrorOf(error);
  if (socket.writable) {
    const status = statusOf[kind];
    const body = JSON.stringify(errorBody(kind, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

function clientErrorOf(error: ConnectionError): { kind: HttpErrorKind; message: string } {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { kind: 'request_timeout', message: 'the request was not received in time' };
    case 'HPE_HEADER_OVERFLOW':
      return { kind: 'headers_too_large', message: 'request headers are too large' };
    default:
      return { kind: 'bad_request', message: 'malformed request' };
  }
}

/**
 * answerFrameworkError answers what the router refuses before any route runs (a URL that
 * cannot be decoded, a path parameter over the router's limit) in the service's error shape,
 * without echoing the URL back.
 */
function answerFrameworkError(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  const kind = (error.statusCode ?? 500) < 500 ? 'bad_request' : 'internal';
  void reply
    .code(statusOf[kind])
    .send(errorBody(kind, kind === 'bad_request' ? 'the URL is not valid' : 'internal error'));
}

/**
 * classifyRequestError maps an error raised by the framework before an order ran to a
 * kind and a message safe to show. Anything unknown is `internal`, with a fixed message.
 */
function classifyRequestError(error: FastifyError): { kind: HttpErrorKind; message: string } {
  if (error.validation !== undefined) return { kind: 'bad_request', message: error.message };
  if (error instanceof BadBodyError) return { kind: 'bad_request', message: error.message };
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { kind: 'unsupported_media_type', message: 'content type must be application/json' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        kind: 'payload_too_large',
        message: `body must not be larger than ${bodyLimitBytes} bytes`,
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { kind: 'bad_request', message: 'body must not be empty' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    default:
      break;
  }
  if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return { kind: 'bad_request', message: 'body is not valid JSON' };
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return { kind: 'bad_request', message: 'bad request' };
  }
  return { kind: 'internal', message: 'internal error' };
}
