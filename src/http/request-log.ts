import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import { roundMs } from '../observability/order-log.js';
import { RefusalLog } from '../observability/refusal-log.js';
import type { OrderAnswer } from '../service/order-answer.js';

declare module 'fastify' {
  interface FastifyReply {
    /** The answer to the order of this request, if any: its log line tells of it. */
    orderAnswer: OrderAnswer | undefined;
    /** The level of this request's line: its route's `requestLogLevel`, else `info`. */
    requestLogLevel: RequestLogLevel;
  }
  interface FastifyContextConfig {
    /**
     * The level of the per-request line of this route's requests, `info` by default: a
     * route polled by a page (the dashboard's state, its files) says `debug`, so that each
     * open page does not write lines at info all day long.
     */
    requestLogLevel?: RequestLogLevel;
  }
}

/** The levels at which a per-request line may be written. */
export type RequestLogLevel = 'info' | 'debug';

/** Log levels at which a per-request line at info, or at debug, is not written. */
const quietLevels: Readonly<Record<RequestLogLevel, ReadonlySet<string>>> = {
  info: new Set(['silent', 'fatal', 'error', 'warn']),
  debug: new Set(['silent', 'fatal', 'error', 'warn', 'info']),
};

/**
 * requestLog writes one line per request when it completes (`request completed`, at info),
 * with its method, URL, status, time and, for an order, what {@link orderSummary} tells.
 * Refusals for overload are the exception: they are counted into one warn line per second
 * (see {@link RefusalLog}), as a line each would flood the logs when the server can least
 * afford it. The route sets `reply.orderAnswer` for the line to tell of the order. A route
 * whose config says `requestLogLevel: 'debug'` has its lines written at debug instead.
 */
export function requestLog(app: FastifyInstance): void {
  app.decorateReply('orderAnswer', undefined);
  app.decorateReply('requestLogLevel', 'info');
  // The route's config is read once, when the route is added: reading it per request
  // (`request.routeOptions`) would build an object for every order.
  app.addHook('onRoute', (route) => {
    const level = route.config?.requestLogLevel;
    if (level === undefined || level === 'info') return;
    const setLevel: onRequestHookHandler = (_request, reply, done) => {
      reply.requestLogLevel = level;
      done();
    };
    const { onRequest } = route;
    route.onRequest = onRequest === undefined ? [setLevel] : [...[onRequest].flat(), setLevel];
  });
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
    const level = reply.requestLogLevel;
    if (quietLevels[level].has(request.log.level)) {
      done();
      return;
    }
    request.log[level](
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        response_time_ms: roundMs(reply.elapsedTime),
        ...(answer === undefined ? {} : orderSummary(answer)),
      },
      'request completed',
    );
    done();
  });
}

/**
 * orderSummary is what the request's one log line tells of an order: its outcome (`ok`,
 * `error`, or `refused` when it did not run), the kind of its failure (`none` on success),
 * its duration (until every step had settled), each step's status and duration in
 * milliseconds (and compensation, for a failed order), and `replayed` for an answer replayed
 * from the record.
 */
function orderSummary(answer: OrderAnswer): Record<string, unknown> {
  const { outcome } = answer;
  if (outcome === undefined) return { outcome: 'refused', kind: answer.error?.kind ?? 'none' };
  let durationMs = 0;
  const steps: Record<string, Record<string, string | number>> = {};
  for (const step of outcome.steps) {
    if (step.durationMs > durationMs) durationMs = step.durationMs;
    steps[step.name] = {
      status: step.status,
      duration_ms: roundMs(step.durationMs),
      ...(step.detail === undefined ? {} : { detail: step.detail }),
      ...(step.compensation === undefined ? {} : { compensation: step.compensation }),
    };
  }
  return {
    outcome: outcome.status,
    kind: outcome.error?.kind ?? 'none',
    duration_ms: roundMs(durationMs),
    steps,
    ...(answer.replayed ? { replayed: true } : {}),
  };
}
