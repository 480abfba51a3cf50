import type { Cancellation } from '../core/cancellation.js';

/**
 * Step is one unit of an order's work, run concurrently with the order's other steps.
 * The pipeline knows steps only through this contract.
 *
 * `run` receives the order and the order's shared cancellation. It must stop promptly once
 * the cancellation aborts and then reject (with `cancel.reason`, or any error): a step
 * that was stopped must leave no committed effect behind, or report the effect by
 * resolving. To hand cancellation to an API that takes an `AbortSignal`, such as `fetch`,
 * pass `cancel.signal` (created on first use).
 *
 * A step fails by rejecting; an {@link OrderError} carries the kind of the failure, and
 * anything else is reported as `internal`.
 *
 * What an aborted step guarantees decides what the saga undoes: a step that rejected
 * (`error`, `canceled`) has left no committed effect, so it is never compensated; a step
 * that resolved (`ok`) has committed its effect and is compensated, and so is a step whose
 * outcome is unknown (still `running` when its process died, `abandoned` after ignoring
 * the abort, or rejected with an `OrderError` whose `effectUnknown` is set: a step that cannot
 * tell whether a request it made was applied says so, and fails all the same).
 */
export interface Step<Order> {
  readonly name: string;
  /**
   * `run` may also read `info`: the run it belongs to, when the order is recorded (the ledger
   * passes it; a pipeline run directly passes none).
   */
  run(order: Order, cancel: Cancellation, info?: RunInfo): Promise<unknown>;
  /**
   * compensate undoes the effect of a `run` that completed (refund the payment, retract the
   * notification, release the courier), when the order as a whole failed. Optional: a step
   * without it has nothing to undo.
   *
   * It runs with its own cancellation and deadline, independent of the order's (the client
   * leaving never skips it), and stops promptly and rejects once `cancel` aborts. It must be
   * idempotent and safe when the effect never happened: it may be retried after a failure or
   * a crash (`attempt` counts from 1), and is also called for a step whose outcome is unknown.
   * Resolving means the effect is undone; rejecting means it may not be, and it will be
   * retried.
   */
  compensate?(
    order: Order,
    cancel: Cancellation,
    attempt: number,
    info?: RunInfo,
  ): Promise<unknown>;
}

/**
 * RunInfo is what a step may know of the recorded run it works for. `runId` is drawn and
 * recorded by the ledger before any step starts, and stays the same for the run's
 * compensations, after a crash too: a step derives from it the idempotency keys of the calls
 * it makes, so that a retried or recovered call is recognised by whoever receives it.
 */
export interface RunInfo {
  readonly runId: string;
}
