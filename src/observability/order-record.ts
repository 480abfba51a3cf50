import type { OrderOutcome } from '../order/pipeline.js';
import type { PoolWait } from './observed-pool.js';

/**
 * OrderRecord is what the observers learn about one settled order. Times are milliseconds
 * on the observer's clock (`performance.now` unless a test supplies one).
 */
export interface OrderRecord {
  readonly orderId: string;
  /** When the order started, on the observer's clock. */
  readonly startedAt: number;
  /** From the start until every step had settled. */
  readonly durationMs: number;
  readonly outcome: OrderOutcome;
  /**
   * For a failed order, how long after its start its shared cancellation aborted (the first
   * failure, the deadline or the client going away); the moment its other steps were told
   * to stop. Undefined for an order that succeeded.
   */
  readonly canceledAtMs: number | undefined;
  /** The order's wait for a courier pool slot, if one of its steps asked for one. */
  readonly courierWait: PoolWait | undefined;
}

/** The step that takes courier pool slots: waits for a slot are drawn and traced on it. */
export const courierStepName = 'courier';
