import type { Cancellation } from '../core/cancellation.js';
import { kindOf, publicMessage } from '../order/errors.js';
import type { Order } from '../order/order.js';
import type { OrderOutcome, Pipeline } from '../order/pipeline.js';
import type { Compensator } from './compensator.js';
import type { LedgerLogger } from './ledger-options.js';
import type { Compensation, NewRun, OrderStore, RecordedOutcome } from './order-store.js';
import type { Submission } from './submission.js';

/** What an execution needs of the ledger around it. */
export interface ExecutionContext {
  readonly store: OrderStore;
  readonly pipeline: Pipeline<Order>;
  readonly compensator: Compensator;
  readonly instanceId: string;
  readonly now: () => number;
  readonly log: LedgerLogger;
  /** Keeps work that outlives the answer (compensations) until the ledger closes. */
  readonly track: (work: Promise<unknown>) => void;
}

/**
 * execute runs a run that {@link OrderStore.begin} has just recorded for this instance, and
 * records its outcome: the steps run under `cancel` (the client, the deadline, a shutdown);
 * a failed order's compensations are planned `pending` and recorded with the outcome in one
 * write; the answer follows that write, so what it states is durable. The compensations then
 * run at once in the background (see {@link Compensator.compensate}).
 *
 * If `cancel` has aborted before the run began (its deadline passed while the store was
 * slow), no step runs: the outcome is every step `canceled` with the abort's kind.
 *
 * Resolves with the answer, and with what a step threw that was not an OrderError as its
 * `cause` (recorded as `internal` only); rejects with the store's error if the outcome cannot
 * be recorded (the run is then left running, to be recovered once its lease expires).
 */
export async function execute(
  context: ExecutionContext,
  run: NewRun,
  cancel: Cancellation,
): Promise<Submission> {
  const { store, pipeline, compensator, now } = context;
  const outcome = cancel.aborted
    ? notRunOutcome(pipeline.stepNames, cancel.reason)
    : await pipeline.run(run.order, { parent: cancel, runId: run.runId });
  const finishedAt = now();
  if (outcome.error?.cause !== undefined) {
    // The client sees `internal` and a fixed message; the cause is for the operator.
    context.log.error(
      { err: outcome.error.cause, order_id: run.orderId },
      'a step failed unexpectedly',
    );
  }
  const compensations = outcome.status === 'ok' ? [] : compensator.plan(outcome.steps, finishedAt);
  const recorded = recordedOutcome(outcome, compensations);
  const finished = await store.finish({
    runId: run.runId,
    owner: context.instanceId,
    outcome: recorded,
    compensations,
    now: finishedAt,
  });
  if (!finished) {
    // Our lease expired and another instance recovered the run meanwhile: its record wins.
    context.log.warn({ order_id: run.orderId }, 'order was taken over before it finished');
    const current = await store.getRun(run.runId);
    return current?.outcome === undefined
      ? 'order_in_progress'
      : { outcome: current.outcome, replayed: true };
  }
  if (compensations.some((compensation) => compensation.status === 'pending')) {
    context.track(
      compensator
        .compensate({ runId: run.runId, orderId: run.orderId, order: run.order, compensations })
        .catch((error: unknown) => {
          // The attempts stay due in the store: the sweep retries them.
          context.log.error(
            { err: error, order_id: run.orderId },
            'recording a compensation failed',
          );
        }),
    );
  }
  const cause = outcome.error?.cause;
  return cause === undefined
    ? { outcome: recorded, replayed: false }
    : { outcome: recorded, replayed: false, cause };
}

/**
 * recordedOutcome is the outcome to record and answer: the pipeline's own for a success,
 * and for a failure each step with where its undoing stands.
 */
function recordedOutcome(
  outcome: OrderOutcome,
  compensations: readonly Compensation[],
): RecordedOutcome {
  if (outcome.status === 'ok') return outcome;
  return {
    status: 'error',
    steps: outcome.steps.map((step, i) => ({
      name: step.name,
      status: step.status,
      durationMs: step.durationMs,
      ...(step.detail === undefined ? {} : { detail: step.detail }),
      compensation: compensations[i]?.status ?? 'not_needed',
    })),
    ...(outcome.error === undefined
      ? {}
      : { error: { kind: outcome.error.kind, message: outcome.error.message } }),
  };
}

/** notRunOutcome is the outcome of an order aborted by `reason` before any step started. */
function notRunOutcome(stepNames: readonly string[], reason: unknown): OrderOutcome {
  return {
    status: 'error',
    steps: stepNames.map((name) => ({ name, status: 'canceled', durationMs: 0 })),
    error: { kind: kindOf(reason), message: publicMessage(reason) },
  };
}
