import type { FastifyBaseLogger } from 'fastify';
import type { OrderAnswer } from '../ledger/order-answer.js';

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

/**
 * orderSummary is what the request's one log line tells of an order: its outcome (`ok`,
 * `error`, or `refused` when it did not run), the kind of its failure (`none` on success),
 * its duration (until every step had settled), each step's status and duration in
 * milliseconds (and compensation, for a failed order), and `replayed` for an answer replayed
 * from the record.
 */
export function orderSummary(answer: OrderAnswer): Record<string, unknown> {
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

/** roundMs rounds milliseconds to microseconds, as every duration the service reports. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
