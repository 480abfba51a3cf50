import type { RecordedOutcome } from '../ledger/order-store.js';
import { kindMessage, type ErrorKind } from '../order/errors.js';

/**
 * OrderAnswer is the one shape in which the service answers a submitted order, whatever
 * happened: it ran (now, or before and is replayed), it was refused before any step ran, its
 * idempotency key was reused with another request, or it is still in progress.
 */
export interface OrderAnswer {
  /** The order's outcome, when it ran. */
  readonly outcome?: RecordedOutcome | undefined;
  /**
   * Why the order failed or was not run: the outcome's error when it ran. `cause` is what
   * the failing step threw when it was not an OrderError (kind `internal`, with a fixed
   * message), for the caller's logs: only on the answer of the request that ran the order,
   * not enumerable (like `Error.cause`, so no serialization carries it), never recorded and
   * never sent to a client.
   */
  readonly error?:
    { readonly kind: ErrorKind; readonly message: string; readonly cause?: unknown } | undefined;
  /** The outcome was recorded by an earlier request and is replayed. */
  readonly replayed: boolean;
  /**
   * Present (true) on a replay whose run has a compensation flagged for an operator: it is
   * not fully undone, and nothing more happens to it until an operator settles the flag.
   */
  readonly needsOperator?: true;
  /** For a refusal or an order still in progress: seconds after which to retry. */
  readonly retryAfterSeconds?: number | undefined;
}

/**
 * answerOf answers with `outcome`, as executed now or, with `replayed`, recorded earlier;
 * `cause`, if any, is what the step behind its `internal` error threw.
 */
export function answerOf(
  outcome: RecordedOutcome,
  replayed: boolean,
  cause?: unknown,
): OrderAnswer {
  if (cause === undefined || outcome.error === undefined) {
    return { outcome, error: outcome.error, replayed };
  }
  // A copy: the recorded outcome's own error stays as recorded.
  const error = { kind: outcome.error.kind, message: outcome.error.message };
  Object.defineProperty(error, 'cause', { value: cause, enumerable: false });
  return { outcome, error, replayed };
}

/** refusalOf answers an order that did not run, with kind `kind`. */
export function refusalOf(kind: ErrorKind, retryAfterSeconds?: number): OrderAnswer {
  return {
    error: { kind, message: kindMessage(kind) },
    replayed: false,
    ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
  };
}
