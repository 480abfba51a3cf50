import type { FastifyBaseLogger } from 'fastify';
import type { OrderOutcome } from '../order/pipeline.js';

/** Levels at which the per-order summary (info) is not written, so it is not even built. */
const quietLevels = new Set(['silent', 'fatal', 'error', 'warn']);

/**
 * logOrderSummary writes the one summary line of a settled order at info: its outcome, the
 * kind of its failure (`none` on success), its duration (until every step had settled) and
 * each step's status and duration in milliseconds. `log` is the order's child logger, which
 * already carries the request id and `order_id`. Writes nothing, and builds nothing, when
 * info is not enabled.
 */
export function logOrderSummary(log: FastifyBaseLogger, outcome: OrderOutcome): void {
  if (quietLevels.has(log.level)) return;
  let durationMs = 0;
  const steps: Record<string, { status: string; duration_ms: number; detail?: string }> = {};
  for (const step of outcome.steps) {
    if (step.durationMs > durationMs) durationMs = step.durationMs;
    steps[step.name] = {
      status: step.status,
      duration_ms: roundMs(step.durationMs),
      ...(step.detail === undefined ? {} : { detail: step.detail }),
    };
  }
  log.info(
    {
      outcome: outcome.status,
      kind: outcome.error?.kind ?? 'none',
      duration_ms: roundMs(durationMs),
      steps,
    },
    'order settled',
  );
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
