import type { FastifyBaseLogger } from 'fastify';

/** The part of a pino logger that adds bindings to the logger itself. */
interface BindableLogger extends FastifyBaseLogger {
  setBindings(bindings: Record<string, unknown>): void;
}

function isBindable(log: FastifyBaseLogger): log is BindableLogger {
  return typeof (log as Partial<BindableLogger>).setBindings === 'function';
}

/**
 * withOrderId makes every later line of `log`, a request's own logger, carry `order_id`,
 * and returns the logger to use for the order. A pino request logger (the framework makes
 * one child per request) takes the binding in place, at a fraction of the cost of another
 * child; a silent logger writes nothing, so it is returned as it is; any other logger gets
 * a child with the binding. `log` must belong to this request alone: bindings added in place
 * stay on it.
 */
export function withOrderId(log: FastifyBaseLogger, orderId: string): FastifyBaseLogger {
  if (log.level === 'silent') return log;
  if (!isBindable(log)) return log.child({ order_id: orderId });
  log.setBindings({ order_id: orderId });
  return log;
}

/** roundMs rounds milliseconds to microseconds, as every duration the service reports. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
