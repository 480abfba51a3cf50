import type { RecordedOutcome } from './order-store.js';

/** Recorded is an order's outcome as recorded: run now, or earlier and replayed. */
export interface Recorded {
  readonly outcome: RecordedOutcome;
  /** The outcome was recorded by an earlier request (or the one this request joined). */
  readonly replayed: boolean;
  /**
   * Present (true) on a replay whose run has a compensation flagged for an operator: what the
   * order did is not fully undone, and nothing more happens to it until an operator acts.
   */
  readonly needsOperator?: true;
  /**
   * What the failing step threw when it was not an OrderError (kind `internal`), for the
   * request that ran the order only: never recorded, so never replayed.
   */
  readonly cause?: unknown;
}

/**
 * LedgerRefusal is why the ledger ran nothing for a keyed request: its key is held by a run
 * still in progress (`order_in_progress`), or was used with another request
 * (`idempotency_conflict`).
 */
export type LedgerRefusal = 'order_in_progress' | 'idempotency_conflict';

/** Submission is what the ledger did with a submitted order. */
export type Submission = Recorded | LedgerRefusal;

/** asReplayed is `submission` as seen by a request that joined the one that ran it. */
export function asReplayed(submission: Submission): Submission {
  return typeof submission === 'string' || submission.replayed
    ? submission
    : { outcome: submission.outcome, replayed: true };
}
