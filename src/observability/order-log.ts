import type { FastifyBaseLogger } from 'fastify';

/**
 * SettledOrder is what the summary reads of an outcome: a live {@link OrderOutcome} or one
 * recorded by the order ledger.
 */
export interface SettledOrder {
  readonly status: 'ok' | 'error';
  readonly steps: readonly {
    readonly name: string;
    readonly status: string;
    readonly durationMs: number;
    readonly detail?: string | undefined;
    readonly compensation?: string | undefined;
  }[];
  readonly error?: { readonly kind: string } | undefined;
}

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

/** Levels at which the per-order summary (info) is not written, so it is not even built. */
const quietLevels = new Set(['silent', 'fatal', 'error', 'warn']);

/**
 * logOrderSummary writes the one summary line of a settled order at info: its outcome, the
 * kind of its failure (`none` on success), its duration (until every step had settled) and
 * each step's status and duration in milliseconds (and compensation, when recorded). `log`
 * is the order's child logger, which already carries the request id and `order_id`. A
 * `replayed` outcome (a duplicate answered from the order ledger) is marked so. Writes
 * nothing, and builds nothing, when info is not enabled.
 */
export function logOrderSummary(
  log: FastifyBaseLogger,
  outcome: SettledOrder,
  replayed = false,
): void {
  if (quietLevels.has(log.level)) return;
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
  log.info(
    {
      outcome: outcome.status,
      kind: outcome.error?.kind ?? 'none',
      duration_ms: roundMs(durationMs),
      steps,
      ...(replayed ? { replayed } : {}),
    },
    'order settled',
  );
}

/** roundMs rounds milliseconds to microseconds, as every duration the service reports. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
