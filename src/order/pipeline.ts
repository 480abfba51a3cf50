import type { ParentCancellation, Cancellation } from '../core/cancellation.js';
import { isPromiseLike } from '../core/is-promise-like.js';
import { TaskGroup } from '../core/task-group.js';
import type { Tracker } from '../core/tracker.js';
import { OrderError, kindOf, publicMessage, type ErrorKind } from './errors.js';
import type { RunInfo, Step } from './step.js';

/**
 * StepStatus is how a step ended. `abandoned` is a step that ignored its order's abort and
 * had not settled when the abandon grace period ran out: the order was answered without it.
 */
export type StepStatus = 'ok' | 'error' | 'canceled' | 'abandoned';

/** StepResult is what one step of an order did. */
export interface StepResult {
  readonly name: string;
  status: StepStatus;
  /** Milliseconds from the start of the order until the step settled. */
  durationMs: number;
  /** For a failed step, the kind of its failure. */
  detail?: ErrorKind;
  /**
   * For a failed or canceled step, set when it rejected with an {@link OrderError} whose
   * `effectUnknown` says its effect may have happened: the saga undoes it.
   */
  effectUnknown?: true;
}

/** OrderOutcome is the result of one order: every step in registration order. */
export interface OrderOutcome {
  status: 'ok' | 'error';
  steps: StepResult[];
  /**
   * Why the order failed. `cause` is what the failing step threw when it was not an
   * {@link OrderError} (kind `internal`): kept for logs and library users, never shown to a
   * client.
   */
  error?: { kind: ErrorKind; message: string; cause?: unknown };
}

/**
 * PipelineObserver watches orders from outside the pipeline (metrics, traces, the dashboard).
 * {@link orderStarted} is called synchronously when an order starts, before its steps run,
 * with the cancellation its steps share and the order's start on the pipeline's clock (the
 * origin of every step's `durationMs`); the function it returns, if any, is called once
 * with the outcome just before {@link Pipeline.run} resolves. Neither may throw: an observer
 * that throws makes `run` reject.
 */
export interface PipelineObserver<Order> {
  orderStarted(
    order: Order,
    cancel: Cancellation,
    startedAt: number,
  ): ((outcome: OrderOutcome) => void) | undefined;
}

export interface PipelineOptions<Order = unknown> {
  /** Counts steps in flight; optional. */
  tracker?: Tracker;
  /** Sees each order start and settle; optional, and free when absent. */
  observer?: PipelineObserver<Order> | undefined;
  /** Clock in milliseconds; defaults to `performance.now`. */
  now?: () => number;
  /**
   * Once an order is aborted (its first failure or its parent), how many milliseconds to wait
   * for steps that ignore the abort before answering without them, marked `abandoned`.
   * Undefined waits for every step however long it takes. Must be a finite number >= 0.
   */
  abandonGraceMs?: number | undefined;
}

export interface RunOptions {
  /**
   * Aborts the order when it aborts, with its reason: the order's deadline (kind `timeout`),
   * a client that went away, a server shutting down.
   */
  parent?: ParentCancellation;
  /** The id of the recorded run this is, handed to every step (see {@link RunInfo}). */
  runId?: string | undefined;
}

/**
 * Pipeline runs an order's steps concurrently in one {@link TaskGroup}: the first step that
 * fails, or the parent, aborts the others. {@link run} answers only when every
 * step has settled, so nothing the order started is still running afterwards — except,
 * with `abandonGraceMs`, a step that ignores the abort for longer than the grace period: it
 * is reported `abandoned` and counted by the tracker until it settles.
 *
 * Results go to per-step slots pre-filled as `abandoned` (the status of a step that has not
 * reported), so they come back in registration order whatever order the steps finish in.
 */
export class Pipeline<Order> {
  readonly #steps: readonly Step<Order>[];
  readonly #tracker: Tracker | undefined;
  readonly #observer: PipelineObserver<Order> | undefined;
  readonly #now: () => number;
  readonly #abandonGraceMs: number | undefined;

  /**
   * An empty step list or two steps with the same name throw a TypeError; an abandon grace
   * that is not a finite number >= 0 throws a RangeError.
   */
  constructor(steps: readonly Step<Order>[], options: PipelineOptions<Order> = {}) {
    if (steps.length === 0) throw new TypeError('Pipeline needs at least one step');
    const names = new Set(steps.map((step) => step.name));
    if (names.size !== steps.length) throw new TypeError('Pipeline step names must be unique');
    this.#steps = [...steps];
    this.#tracker = options.tracker;
    this.#observer = options.observer;
    this.#now = options.now ?? performance.now.bind(performance);
    const graceMs = options.abandonGraceMs;
    if (graceMs !== undefined && !(Number.isFinite(graceMs) && graceMs >= 0)) {
      throw new RangeError(`abandonGraceMs must be a finite number >= 0, got ${graceMs}`);
    }
    this.#abandonGraceMs = graceMs;
  }

  /** stepNames lists the steps in registration order. */
  get stepNames(): string[] {
    return this.#steps.map((step) => step.name);
  }

  /**
   * run executes every step of `order` and resolves with the outcome; it never rejects.
   * A step's failure is classified by {@link kindOf}; the order's error is the first failure
   * by time, or the parent's abort reason.
   */
  run(order: Order, options: RunOptions = {}): Promise<OrderOutcome> {
    const group = new TaskGroup(options.parent);
    const startedAt = this.#now();
    // Pre-filled `abandoned`: every path of #runStep overwrites it when the step settles, so
    // a slot still holding it when the grace period ends belongs to a step that ignored the
    // abort.
    const steps: StepResult[] = this.#steps.map((step) => ({
      name: step.name,
      status: 'abandoned',
      durationMs: 0,
    }));
    const settled = this.#observer?.orderStarted(order, group.cancellation, startedAt);
    const info = options.runId === undefined ? undefined : { runId: options.runId };
    for (let i = 0; i < this.#steps.length; i++) {
      const step = this.#steps[i] as Step<Order>;
      const slot = steps[i] as StepResult;
      group.go(
        (cancel) => this.#runStep(step, order, cancel, info),
        (failed, error) => {
          this.#stepSettled(slot, failed, error, group.cancellation, startedAt);
        },
      );
    }
    const answer = (answered: StepResult[], failed: boolean, failure?: unknown): OrderOutcome => {
      const outcome: OrderOutcome = failed
        ? {
            status: 'error',
            steps: answered,
            error: errorOf(failure),
          }
        : { status: 'ok', steps: answered };
      settled?.(outcome);
      return outcome;
    };
    // Continuations rather than await in try/catch: on the cancel path a thrown exception
    // would cost more than the whole happy path of an order.
    const fail = (error: unknown): OrderOutcome => answer(steps, true, error);
    if (this.#abandonGraceMs === undefined) {
      return group.wait().then(() => answer(steps, false), fail);
    }
    return this.#waitWithGrace(group, steps, startedAt, this.#abandonGraceMs).then(
      (abandoned) =>
        abandoned === undefined
          ? answer(steps, false)
          : answer(abandoned, true, group.cancellation.reason),
      fail,
    );
  }

  /**
   * waitWithGrace waits for the group like `group.wait()`, except that once the group is
   * aborted with steps still running it waits only `graceMs` more. It then resolves with a
   * copy of the slots in which the steps still running are `abandoned`, counts them as
   * abandoned in the tracker and leaves them running: the live slots stay theirs to write
   * when they settle, which changes nothing in the answer. If every step settles in time it
   * resolves with undefined, or rejects with the group's error. No timer is started unless
   * the group is aborted with steps pending, and the group's late rejection is handled.
   */
  #waitWithGrace(
    group: TaskGroup,
    slots: StepResult[],
    startedAt: number,
    graceMs: number,
  ): Promise<StepResult[] | undefined> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const abandon = (): void => {
        const now = this.#now();
        const answer = slots.map((slot) => ({ ...slot }));
        slots.forEach((slot, i) => {
          if (slot.status !== 'abandoned') return;
          abandonedSlots.add(slot);
          this.#tracker?.abandon();
          (answer[i] as StepResult).durationMs = now - startedAt;
        });
        resolve(answer);
      };
      const startGrace = (): void => {
        // The group's own end also aborts its cancellation; nothing is running then.
        if (group.pending > 0) timer = setTimeout(abandon, graceMs);
      };
      const stopListening = group.cancellation.onAbort(startGrace);
      group.wait().then(
        () => {
          clearTimeout(timer);
          stopListening();
          resolve(undefined);
        },
        (error: unknown) => {
          clearTimeout(timer);
          stopListening();
          reject(error);
        },
      );
      if (group.cancellation.aborted) startGrace();
    });
  }

  /**
   * runStep starts one step and returns its promise for the group. A step that throws, or
   * returns something other than a promise, fails like one that rejects.
   */
  #runStep(
    step: Step<Order>,
    order: Order,
    cancel: Cancellation,
    info: RunInfo | undefined,
  ): unknown {
    this.#tracker?.enter();
    let result: unknown;
    try {
      result = step.run(order, cancel, info);
    } catch (error) {
      return Promise.reject(error);
    }
    if (isPromiseLike(result)) return result;
    return Promise.reject(new TypeError(`step ${step.name} did not return a promise`));
  }

  /**
   * stepSettled records how a step ended in its slot. The group calls it from its own
   * callback, before it counts the step: the order is answered only once every slot is
   * written, with no promise turn of the pipeline's own.
   */
  #stepSettled(
    slot: StepResult,
    failed: boolean,
    error: unknown,
    cancel: Cancellation,
    startedAt: number,
  ): void {
    if (!failed) {
      slot.status = 'ok';
    } else if (cancel.aborted) {
      // A step that fails after the order was aborted was stopped by that abort.
      slot.status = 'canceled';
    } else {
      slot.status = 'error';
      slot.detail = kindOf(error);
    }
    // Failed or stopped, a step that cannot tell whether its effect happened is undone.
    if (failed && error instanceof OrderError && error.effectUnknown) slot.effectUnknown = true;
    slot.durationMs = this.#now() - startedAt;
    // Only an aborted order can have abandoned steps: the happy path reads one field.
    if (cancel.aborted && abandonedSlots.delete(slot)) this.#tracker?.leaveAbandoned();
    else this.#tracker?.leave();
  }
}

/** Slots of steps answered without while still running; each leaves when its step settles. */
const abandonedSlots = new WeakSet<StepResult>();

/**
 * errorOf is an order's error for `failure`: its kind and a safe message; for a failure that
 * is not an {@link OrderError}, also the failure itself as `cause`, not enumerable (like
 * `Error.cause`), so that no serialization of the outcome carries it by accident.
 */
function errorOf(failure: unknown): { kind: ErrorKind; message: string; cause?: unknown } {
  const error: { kind: ErrorKind; message: string; cause?: unknown } = {
    kind: kindOf(failure),
    message: publicMessage(failure),
  };
  if (error.kind === 'internal' && !(failure instanceof OrderError)) {
    Object.defineProperty(error, 'cause', { value: failure, enumerable: false });
  }
  return error;
}
