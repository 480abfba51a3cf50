import { Semaphore, type Pool } from '../core/semaphore.js';
import { Tracker } from '../core/tracker.js';
import { Admission } from './admission.js';
import type { Order, StepName } from './order.js';
import { Pipeline, type PipelineObserver } from './pipeline.js';
import { simulatedSteps } from './simulated-steps.js';
import type { Step } from './step.js';

/** OrderService is everything needed to process orders, wired together. */
export interface OrderService {
  readonly pipeline: Pipeline<Order>;
  readonly courierPool: Pool;
  /** Counts steps in flight across all orders. */
  readonly tracker: Tracker;
  /** Decides before any step starts whether an order is taken; absent admits every order. */
  readonly admission?: Admission | undefined;
  /** The pipeline's steps, in registration order (the saga compensates them). */
  readonly steps?: readonly Step<Order>[] | undefined;
}

export interface OrderServiceOptions {
  /** Slots of the courier pool (ignored when `courierPool` is given). */
  courierPoolSize?: number;
  /** A ready pool, e.g. a distributed one; defaults to an in-process {@link Semaphore}. */
  courierPool?: Pool;
  /** Default delays of the simulated steps. */
  delays?: Readonly<Record<StepName, number>>;
  /** Replaces the simulated steps. */
  steps?: (courierPool: Pool) => Step<Order>[];
  /** Watches every order (metrics, traces, the dashboard); none by default. */
  observer?: PipelineObserver<Order> | undefined;
  /** Orders in flight before new ones are refused `overloaded`; unbounded by default. */
  maxInflightOrders?: number;
  /** Courier waiters before new orders are refused `overloaded`; unbounded by default. */
  courierQueueLimit?: number;
  /** Grace for steps that ignore an abort; {@link defaultAbandonGraceMs} by default. */
  abandonGraceMs?: number;
}

/** How long an aborted order waits for steps that ignore the abort, unless configured. */
export const defaultAbandonGraceMs = 1000;

/**
 * courierPoolOf is the courier pool a service built with `options` uses: the pool given, or
 * else an in-process {@link Semaphore} of `courierPoolSize` slots (5 by default). A size that
 * is not a positive integer throws a RangeError.
 */
export function courierPoolOf(
  options: Pick<OrderServiceOptions, 'courierPool' | 'courierPoolSize'>,
): Pool {
  return options.courierPool ?? new Semaphore(options.courierPoolSize ?? 5);
}

/**
 * createOrderService builds the courier pool, the tracker, the steps, the pipeline and the
 * admission over them; nothing runs until an order is submitted. A pool size, limit or grace
 * period outside its range throws a RangeError, and a step list the pipeline refuses (empty,
 * duplicate names) a TypeError; nothing is left running either way.
 */
export function createOrderService(
  options: OrderServiceOptions = {},
): OrderService & { readonly admission: Admission } {
  const courierPool = courierPoolOf(options);
  const tracker = new Tracker();
  const steps =
    options.steps?.(courierPool) ??
    simulatedSteps(options.delays ? { courierPool, delays: options.delays } : { courierPool });
  const pipeline = new Pipeline(steps, {
    tracker,
    observer: options.observer,
    abandonGraceMs: options.abandonGraceMs ?? defaultAbandonGraceMs,
  });
  const admission = new Admission({
    courierPool,
    maxInflightOrders: options.maxInflightOrders ?? Infinity,
    courierQueueLimit: options.courierQueueLimit ?? Infinity,
  });
  return { pipeline, courierPool, tracker, admission, steps };
}
