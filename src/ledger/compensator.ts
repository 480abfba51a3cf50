import type { Order } from '../order/order.js';
import type { Step } from '../order/step.js';
import type { LedgerHooks, LedgerLogger } from './ledger-options.js';
import type { Compensation, OrderStore, RecordedStep } from './order-store.js';
import { isClaimable } from './compensation-rules.js';
import {
  compensateStep,
  needsCompensation,
  retryDelayMs,
  type CompensationAttempt,
} from './saga.js';

export interface CompensatorOptions {
  readonly store: OrderStore;
  /** The pipeline's steps, in registration order: their `compensate` undoes them. */
  readonly steps: readonly Step<Order>[];
  /** Deadline of one compensation attempt. */
  readonly timeoutMs: number;
  /** Attempts per compensation before it is flagged for an operator. */
  readonly maxAttempts: number;
  /** Delay before the first retry; doubles per attempt, with jitter. */
  readonly retryBaseMs: number;
  /** Cap of the retry delay. */
  readonly retryMaxMs: number;
  readonly now: () => number;
  readonly random: () => number;
  readonly log: LedgerLogger;
  readonly hooks: LedgerHooks;
}

/** The part of a run the compensator reads. */
export interface RunToCompensate {
  readonly runId: string;
  readonly orderId: string;
  readonly order: Order;
  readonly compensations: readonly Compensation[];
}

/**
 * Compensator owns the saga's compensation policy: which steps of a failed order are undone,
 * in which order, how a failed attempt is retried (exponential backoff with jitter) and when
 * it is flagged for an operator instead.
 */
export class Compensator {
  readonly #options: CompensatorOptions;
  readonly #positions: ReadonlyMap<string, number>;

  constructor(options: CompensatorOptions) {
    this.#options = options;
    this.#positions = new Map(options.steps.map((step, i) => [step.name, i]));
  }

  /**
   * claimWindowMs is how long a compensation attempt may take before another instance may
   * take it over: twice an attempt's deadline.
   */
  get claimWindowMs(): number {
    return 2 * this.#options.timeoutMs;
  }

  /**
   * holdsClaim tells whether compensations claimed at `claimedAt` (planned then, or claimed
   * due then) may still be attempted here: whether an attempt started now reaches its
   * deadline within {@link claimWindowMs}, before another sweep may claim them.
   */
  holdsClaim(claimedAt: number): boolean {
    return this.#options.now() + this.#options.timeoutMs <= claimedAt + this.claimWindowMs;
  }

  /**
   * plan lists the compensation of every step of a failed order, in registration order: a
   * step that may have left an effect (see {@link needsCompensation}, and a failed step whose
   * `effectUnknown` is set) and can be undone is `pending`, the others are `not_needed`. The
   * pending ones are due after {@link claimWindowMs}: the caller runs them at once with
   * {@link compensate}, and only if it dies are they left to another sweep.
   */
  plan(
    steps: readonly (Pick<RecordedStep, 'name' | 'status'> & { readonly effectUnknown?: true })[],
    now: number,
  ): Compensation[] {
    return steps.map(({ name, status, effectUnknown }) => {
      const step = this.#options.steps[this.#positions.get(name) ?? -1];
      return step?.compensate !== undefined && (needsCompensation(status) || effectUnknown === true)
        ? {
            name,
            status: 'pending',
            attempts: 0,
            nextAttemptAt: now + this.claimWindowMs,
            needsOperator: false,
          }
        : { name, status: 'not_needed', attempts: 0, needsOperator: false };
    });
  }

  /**
   * compensate makes one attempt of every compensation of `run` that is left to the retries
   * and due by `dueBy` (every open one, for a run just planned), one after the other in
   * reverse registration order, as a saga unwinds; a failed attempt does not stop the
   * others. Then it records the new states in one write. Rejects only if that write fails.
   */
  async compensate(run: RunToCompensate, dueBy = Infinity): Promise<void> {
    const next = [...run.compensations];
    let attempted = false;
    for (let i = next.length - 1; i >= 0; i--) {
      const compensation = next[i] as Compensation;
      if (!isClaimable(compensation) || (compensation.nextAttemptAt ?? 0) > dueBy) continue;
      const step = this.#options.steps[this.#positions.get(compensation.name) ?? -1];
      const attempt = compensation.attempts + 1;
      const result: CompensationAttempt =
        step === undefined
          ? {
              ok: false,
              kind: 'internal',
              message: `no step named ${compensation.name}`,
              publicMessage: `no step named ${compensation.name} to compensate`,
            }
          : await compensateStep(step, run.order, attempt, this.#options.timeoutMs, run.runId);
      next[i] = this.#afterAttempt(run.orderId, compensation, attempt, result);
      attempted = true;
    }
    if (attempted)
      await this.#options.store.recordCompensations(run.runId, next, this.#options.now());
  }

  /**
   * afterAttempt turns an attempt into the state to record: done, retry later with backoff,
   * or, past the attempt limit, flagged for an operator (logged, and hooked for metrics). A
   * failure records the attempt's public message as `lastError`: an operator reads it on the
   * dashboard and in `GET /order/:order_id`, so it never holds an internal message.
   */
  #afterAttempt(
    orderId: string,
    compensation: Compensation,
    attempt: number,
    result: CompensationAttempt,
  ): Compensation {
    const { name } = compensation;
    const { hooks, log, maxAttempts } = this.#options;
    hooks.compensationAttempted?.(name, result.ok ? 'compensated' : 'compensation_failed');
    if (result.ok) return { name, status: 'compensated', attempts: attempt, needsOperator: false };
    if (attempt >= maxAttempts) {
      log.error(
        {
          order_id: orderId,
          step: name,
          attempts: attempt,
          kind: result.kind,
          reason: result.message,
        },
        'compensation failed for good: operator action needed',
      );
      hooks.operatorFlagged?.(orderId, name);
      return {
        name,
        status: 'compensation_failed',
        attempts: attempt,
        lastError: result.publicMessage,
        needsOperator: true,
      };
    }
    const { retryBaseMs, retryMaxMs, random, now } = this.#options;
    const delay = retryDelayMs(attempt, retryBaseMs, retryMaxMs, random);
    log.warn(
      { order_id: orderId, step: name, attempt, kind: result.kind, retry_in_ms: delay },
      'compensation failed; will retry',
    );
    return {
      name,
      status: 'compensation_failed',
      attempts: attempt,
      nextAttemptAt: now() + delay,
      lastError: result.publicMessage,
      needsOperator: false,
    };
  }
}
