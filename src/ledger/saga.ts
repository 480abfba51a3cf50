import { CancelSource } from '../core/cancellation.js';
import { isPromiseLike } from '../core/is-promise-like.js';
import { OrderError, kindOf, type ErrorKind } from '../order/errors.js';
import type { Step } from '../order/step.js';
import type { RecordedStepStatus } from './order-store.js';
import { messageOf } from '../core/message-of.js';

/**
 * The result of one compensation attempt: the effect is undone, or may not be. A failure
 * carries the error's own `message` (for the logs only: it may be internal) and a
 * `publicMessage` safe to show an operator: the message of an {@link OrderError}, written
 * to be shown, else a fixed text naming the step and the attempt.
 */
export type CompensationAttempt =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly kind: ErrorKind;
      readonly message: string;
      readonly publicMessage: string;
    };

/**
 * needsCompensation tells whether a step that ended with `status` may have left an effect:
 * it completed (`ok`), or its outcome is unknown (`interrupted` when its process died,
 * `abandoned` after it ignored the abort). A step that rejected left none (see {@link Step}).
 */
export function needsCompensation(status: RecordedStepStatus): boolean {
  return status === 'ok' || status === 'interrupted' || status === 'abandoned';
}

/**
 * compensateStep runs one attempt of `step`'s compensation under its own deadline of
 * `timeoutMs`, independent of any order's cancellation: nothing but the deadline can stop
 * it. Resolves with the attempt's result and never rejects; a step without `compensate`
 * has nothing to undo and succeeds at once. The deadline timer is cleared and the
 * cancellation disposed before it resolves. `runId`, the run being undone, is handed to the
 * step as its `RunInfo`.
 */
export async function compensateStep<Order>(
  step: Step<Order>,
  order: Order,
  attempt: number,
  timeoutMs: number,
  runId?: string,
): Promise<CompensationAttempt> {
  if (step.compensate === undefined) return { ok: true };
  const deadline = new CancelSource();
  const timer = setTimeout(() => {
    deadline.abort(
      new OrderError('timeout', `compensation of ${step.name} exceeded ${timeoutMs} ms`),
    );
  }, timeoutMs);
  try {
    const result: unknown = step.compensate(
      order,
      deadline,
      attempt,
      runId === undefined ? undefined : { runId },
    );
    if (!isPromiseLike(result)) {
      throw new TypeError(`compensation of ${step.name} did not return a promise`);
    }
    await result;
    return { ok: true };
  } catch (error) {
    return {
      ok: false,
      kind: kindOf(error),
      message: messageOf(error),
      publicMessage:
        error instanceof OrderError
          ? error.message
          : `compensation of ${step.name} failed (attempt ${attempt})`,
    };
  } finally {
    clearTimeout(timer);
    deadline.dispose();
  }
}

/**
 * retryDelayMs is the wait before compensation attempt `attempt + 1`, after `attempt`
 * failed: exponential from `baseMs`, capped at `maxMs`, with "equal jitter" (a uniform
 * draw in [half, full] of the exponential value) so that retries of many orders spread out.
 */
export function retryDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const exponential = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return Math.round(exponential / 2 + (random() * exponential) / 2);
}
