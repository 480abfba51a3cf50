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
 */
export interface Step<Order> {
  readonly name: string;
  run(order: Order, cancel: Cancellation): Promise<unknown>;
}
