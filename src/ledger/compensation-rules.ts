/**
 * The rules about the compensations of a run that every order store applies, so that the
 * three stores, the ledger and what the edge shows agree on what is open, due, claimable and
 * flagged. Each is a pure function of the compensations it is given (and the times passed
 * in): it never throws and never changes its input; the ones that change a run return a new
 * array, or undefined when there is nothing to change.
 */
import type { Compensation } from './order-store.js';

/** isOpen tells whether a compensation still has to be done (by a retry or an operator). */
export function isOpen(compensation: Compensation): boolean {
  return compensation.status === 'pending' || compensation.status === 'compensation_failed';
}

/** isClaimable tells whether a compensation is left to the retries (open and not flagged). */
export function isClaimable(compensation: Compensation): boolean {
  return isOpen(compensation) && !compensation.needsOperator;
}

/**
 * nextCompensationAt is when the next attempt of any claimable compensation is due: the
 * earliest, or undefined if none is left to the retries. Stores index runs by it.
 */
export function nextCompensationAt(compensations: readonly Compensation[]): number | undefined {
  let next: number | undefined;
  for (const compensation of compensations) {
    const at = compensation.nextAttemptAt;
    if (!isClaimable(compensation) || at === undefined) continue;
    if (next === undefined || at < next) next = at;
  }
  return next;
}

/** needsOperator tells whether any compensation of a run is flagged for an operator. */
export function needsOperator(compensations: readonly Compensation[]): boolean {
  return compensations.some((compensation) => compensation.needsOperator);
}

/**
 * claimDue is `compensations` with every attempt due by `now` pushed to `claimUntil`, or
 * undefined if none is due: how a store claims the due compensations of a run.
 */
export function claimDue(
  compensations: readonly Compensation[],
  now: number,
  claimUntil: number,
): Compensation[] | undefined {
  const isDue = (compensation: Compensation): boolean => {
    const at = compensation.nextAttemptAt;
    return isClaimable(compensation) && at !== undefined && at <= now;
  };
  if (!compensations.some(isDue)) return undefined;
  return compensations.map((compensation) =>
    isDue(compensation) ? { ...compensation, nextAttemptAt: claimUntil } : compensation,
  );
}

/**
 * settledFlag is `compensations` with the flagged compensation of `step` settled by an
 * operator, or undefined if `step` has no flag: how a store records an operator's action.
 */
export function settledFlag(
  compensations: readonly Compensation[],
  step: string,
): Compensation[] | undefined {
  const index = compensations.findIndex((c) => c.name === step && c.needsOperator);
  if (index < 0) return undefined;
  return compensations.map((compensation, i) =>
    i === index
      ? {
          name: compensation.name,
          status: 'settled_by_operator',
          attempts: compensation.attempts,
          ...(compensation.lastError === undefined ? {} : { lastError: compensation.lastError }),
          needsOperator: false,
        }
      : compensation,
  );
}

/** isAttention tells whether a run's compensations need watching: open or flagged. */
export function isAttention(compensations: readonly Compensation[]): boolean {
  return compensations.some((c) => isOpen(c) || c.needsOperator);
}
