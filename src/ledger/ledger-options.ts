import type { Order } from '../order/order.js';
import type { Pipeline } from '../order/pipeline.js';
import type { Step } from '../order/step.js';
import type { OrderStore } from './order-store.js';

/** Hooks for metrics; each must not throw. */
export interface LedgerHooks {
  /** A compensation attempt ended; `result` is `compensated` or `compensation_failed`. */
  compensationAttempted?(step: string, result: 'compensated' | 'compensation_failed'): void;
  /** A compensation exhausted its attempts: an operator must settle it. */
  operatorFlagged?(orderId: string, step: string): void;
  /** A run left running by a dead instance was recovered as `interrupted`. */
  orderRecovered?(orderId: string): void;
}

/** The subset of a pino logger the ledger writes to. */
export interface LedgerLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface OrderLedgerOptions {
  readonly store: OrderStore;
  /** {@link OrderLedger.close} also closes the store. */
  readonly ownsStore?: boolean | undefined;
  readonly pipeline: Pipeline<Order>;
  /** The pipeline's steps, for their compensations. */
  readonly steps: readonly Step<Order>[];
  /** This instance's id in the store; random by default. */
  readonly instanceId?: string | undefined;
  /** How long an instance's claim on its running orders lasts without renewal. */
  readonly leaseMs: number;
  /** Deadline of one compensation attempt. */
  readonly compensationTimeoutMs: number;
  /** Attempts per compensation before it is flagged for an operator. */
  readonly compensationMaxAttempts: number;
  /** First retry delay of a failed compensation; doubles per attempt, with jitter. */
  readonly compensationRetryBaseMs: number;
  /** Cap of the retry delay. */
  readonly compensationRetryMaxMs: number;
  /** Period of the background sweep; a third of the lease, at most 1 s, by default. */
  readonly sweepIntervalMs?: number | undefined;
  readonly logger?: LedgerLogger | undefined;
  readonly hooks?: LedgerHooks | undefined;
  /** Wall clock in epoch milliseconds; `Date.now` by default. */
  readonly now?: (() => number) | undefined;
  /** Jitter source in [0, 1); `Math.random` by default. */
  readonly random?: (() => number) | undefined;
}

export const silentLogger: LedgerLogger = { info: noop, warn: noop, error: noop };

function noop(): void {
  // Logging disabled.
}

/**
 * sweepIntervalFor is the default period of the ledger's background sweep for a lease of
 * `leaseMs`: a third of it, at most 1 s, so that a lease is renewed at least three times before
 * it runs out. A dead instance's run is recovered within lease + one period of its death.
 */
export function sweepIntervalFor(leaseMs: number): number {
  return Math.min(1000, Math.floor(leaseMs / 3));
}
