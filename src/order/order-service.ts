import { Semaphore, type Pool } from '../core/semaphore.js';
import { Tracker } from '../core/tracker.js';
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
}

/** createOrderService builds the courier pool, the tracker, the steps and the pipeline. */
export function createOrderService(options: OrderServiceOptions = {}): OrderService {
  const courierPool = options.courierPool ?? new Semaphore(options.courierPoolSize ?? 5);
  const tracker = new Tracker();
  const steps =
    options.steps?.(courierPool) ??
    simulatedSteps(options.delays ? { courierPool, delays: options.delays } : { courierPool });
  const pipeline = new Pipeline(steps, { tracker, observer: options.observer });
  return { pipeline, courierPool, tracker };
}
