import type { ErrorKind } from '../order/errors.js';
import { isOpen } from './compensation-rules.js';
import type { OrderRun } from './order-store.js';

/**
 * mayRestart is the rule of `OrderStore.restart`, which every store applies: the run holding
 * an idempotency key may give it to a new run when it is finished with a retryable outcome
 * (its error kind is in `retryable`), the new request has its `fingerprint`, and none of its
 * compensations is still open. A pure function of its arguments: it never throws.
 */
export function mayRestart(
  holder: OrderRun,
  fingerprint: string | undefined,
  retryable: readonly ErrorKind[],
): boolean {
  const kind = holder.outcome?.error?.kind;
  return (
    holder.state === 'finished' &&
    holder.fingerprint === fingerprint &&
    kind !== undefined &&
    retryable.includes(kind) &&
    !holder.compensations.some(isOpen)
  );
}
