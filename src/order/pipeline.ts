import type { ParentCancellation, Cancellation } from '../core/cancellation.js';
import { isPromiseLike } from '../core/is-promise-like.js';
import { TaskGroup } from '../core/task-group.js';
import type { Tracker } from '../core/tracker.js';
import { OrderError, kindOf, publicMessage, type ErrorKind } from './errors.js';
import type { Step } from './step.js';

export type StepStatus = 'ok' | 'error' | 'canceled';

/** StepResult is what one step of an order did. */
export interface StepResult {
  readonly name: string;
  status: StepStatus;
  /** Milliseconds from the start of the order until the step settled. */
  durationMs: number;
  /** For a failed step, the kind of its failure. */
  detail?: ErrorKind;
}

/** OrderOutcome is the result of one order: every step in registration order. */
export interface OrderOutcome {
  status: 'ok' | 'error';
  steps: StepResult[];
  error?: { kind: ErrorKind; message: string };
}

/**
 * PipelineObserver watches orders from outside the pipeline (metrics, traces, the dashboard).
 * {@link orderStarted} is called synchronously when an order starts, before its steps run,
 * with the cancellation its steps share; the function it returns, if any, is called once
 * with the outcome just before {@link Pipeline.run} resolves. Neither may throw: an observer
 * that throws makes `run` reject.
 */
export interface PipelineObserver<Order> {
  orderStarted(order: Order, cancel: Cancellation): ((outcome: OrderOutcome) => void) | undefined;
}

export interface PipelineOptions<Order = unknown> {
  /** Counts steps in flight; optional. */
  tracker?: Tracker;
  /** Sees each order start and settle; optional, and free when absent. */
  observer?: PipelineObserver<Order> | undefined;
  /** Clock in milliseconds; defaults to `performance.now`. */
  now?: () => number;
}

export interface RunOptions {
  /** Aborts the order when it aborts: a client that went away, a server shutting down. */
  parent?: ParentCancellation;
  /** Aborts the order with kind `timeout` after this many milliseconds. */
  deadlineMs?: number;
}

/**
 * Pipeline runs an order's steps concurrently in one {@link TaskGroup}: the first step that
 * fails, the deadline or the parent aborts the others. {@link run} answers only when every
 * step has settled, so nothing the order started is still running afterwards.
 *
 * Results go to per-step slots pre-filled as `canceled`, so they come back in registration
 * order whatever order the steps finish in.
 */
export class Pipeline<Order> {
  readonly #steps: readonly Step<Order>[];
  readonly #tracker: Tracker | undefined;
  readonly #observer: PipelineObserver<Order> | undefined;
  readonly #now: () => number;

  /** An empty step list or two steps with the same name throw a TypeError. */
  constructor(steps: readonly Step<Order>[], options: PipelineOptions<Order> = {}) {
    if (steps.length === 0) throw new TypeError('Pipeline needs at least one step');
    const names = new Set(steps.map((step) => step.name));
    if (names.size !== steps.length) throw new TypeError('Pipeline step names must be unique');
    this.#steps = [...steps];
    this.#tracker = options.tracker;
    this.#observer = options.observer;
    this.#now = options.now ?? performance.now.bind(performance);
  }

  /** stepNames lists the steps in registration order. */
  get stepNames(): string[] {
    return this.#steps.map((step) => step.name);
  }

  /**
   * run executes every step of `order` and resolves with the outcome; it never rejects.
   * A step's failure is classified by {@link kindOf}; the order's error is the first failure
   * by time, or the deadline (`timeout`), or the parent's abort reason.
   */
  async run(order: Order, options: RunOptions = {}): Promise<OrderOutcome> {
    const group = new TaskGroup(options.parent);
    const startedAt = this.#now();
    const steps: StepResult[] = this.#steps.map((step) => ({
      name: step.name,
      status: 'canceled',
      durationMs: 0,
    }));
    const settled = this.#observer?.orderStarted(order, group.cancellation);
    let deadline: NodeJS.Timeout | undefined;
    const { deadlineMs } = options;
    if (deadlineMs !== undefined && !group.cancellation.aborted) {
      deadline = setTimeout(() => {
        group.abort(new OrderError('timeout', `order did not complete within ${deadlineMs} ms`));
      }, deadlineMs);
    }
    for (let i = 0; i < this.#steps.length; i++) {
      const step = this.#steps[i] as Step<Order>;
      const slot = steps[i] as StepResult;
      group.go((cancel) => this.#runStep(step, order, cancel, slot, startedAt));
    }
    let failure: unknown;
    let failed = false;
    try {
      await group.wait();
    } catch (error) {
      failed = true;
      failure = error;
    } finally {
      clearTimeout(deadline);
    }
    const outcome: OrderOutcome = failed
      ? {
          status: 'error',
          steps,
          error: { kind: kindOf(failure), message: publicMessage(failure) },
        }
      : { status: 'ok', steps };
    settled?.(outcome);
    return outcome;
  }

  async #runStep(
    step: Step<Order>,
    order: Order,
    cancel: Cancellation,
    slot: StepResult,
    startedAt: number,
  ): Promise<void> {
    this.#tracker?.enter();
    try {
      const result: unknown = step.run(order, cancel);
      if (!isPromiseLike(result)) {
        throw new TypeError(`step ${step.name} did not return a promise`);
      }
      await result;
      slot.status = 'ok';
    } catch (error) {
      // A step that fails after the order was aborted was stopped by that abort.
      if (cancel.aborted) {
        slot.status = 'canceled';
      } else {
        slot.status = 'error';
        slot.detail = kindOf(error);
      }
      throw error;
    } finally {
      slot.durationMs = this.#now() - startedAt;
      this.#tracker?.leave();
    }
  }
}
