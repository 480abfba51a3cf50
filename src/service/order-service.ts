import { defaultConfig } from '../config.js';
import { CancelSource, link, type ParentCancellation } from '../core/cancellation.js';
import { Semaphore, type Pool } from '../core/semaphore.js';
import { Tracker } from '../core/tracker.js';
import { fingerprint } from '../ledger/fingerprint.js';
import type { LedgerHooks, LedgerLogger } from '../ledger/ledger-options.js';
import { answerOf, refusalOf, type OrderAnswer } from '../ledger/order-answer.js';
import { OrderLedger } from '../ledger/order-ledger.js';
import type { OrderStore } from '../ledger/order-store.js';
import { OrderError } from '../order/errors.js';
import type { Order, StepName } from '../order/order.js';
import { Pipeline, type PipelineObserver } from '../order/pipeline.js';
import { simulatedSteps } from '../order/simulated-steps.js';
import type { Step } from '../order/step.js';
import { MemoryOrderStore } from '../store/memory-order-store.js';
import { Admission } from './admission.js';
import { MeasuredPool } from './measured-pool.js';

export interface OrderServiceOptions {
  /** Slots of the in-process courier pool (ignored when `courierPool` is given). */
  readonly courierPoolSize?: number | undefined;
  /** A ready pool, e.g. a distributed or an observed one; an in-process Semaphore by default. */
  readonly courierPool?: Pool | undefined;
  /** Default delays of the simulated steps. */
  readonly delays?: Readonly<Record<StepName, number>> | undefined;
  /** Replaces the simulated steps; gets the courier pool the steps must use. */
  readonly steps?: ((courierPool: Pool) => Step<Order>[]) | undefined;
  /** Watches every order (metrics, traces, the dashboard); none by default. */
  readonly observer?: PipelineObserver<Order> | undefined;
  /** Deadline of one order, from when its request arrived, covering every wait. */
  readonly requestTimeoutMs?: number | undefined;
  /** Orders in flight before new ones are refused `overloaded`: a memory guard. */
  readonly maxInflightOrders?: number | undefined;
  /** Grace for steps that ignore an abort before the order answers without them. */
  readonly abandonGraceMs?: number | undefined;
  /** Where orders are recorded; a {@link MemoryOrderStore} by default. */
  readonly store?: OrderStore | undefined;
  /** {@link OrderService.close} also closes the store (true for the default store). */
  readonly ownsStore?: boolean | undefined;
  /** This instance's id in a shared store; random by default. */
  readonly instanceId?: string | undefined;
  readonly leaseMs?: number | undefined;
  readonly compensationTimeoutMs?: number | undefined;
  readonly compensationMaxAttempts?: number | undefined;
  readonly compensationRetryBaseMs?: number | undefined;
  readonly compensationRetryMaxMs?: number | undefined;
  readonly logger?: LedgerLogger | undefined;
  readonly ledgerHooks?: LedgerHooks | undefined;
  /** The ledger's wall clock in epoch milliseconds (tests move it); `Date.now` by default. */
  readonly clock?: (() => number) | undefined;
  /** The ledger's jitter source in [0, 1); `Math.random` by default. */
  readonly random?: (() => number) | undefined;
}

/** OrderRequest is one order as the edge hands it to the service. */
export interface OrderRequest {
  readonly order: Order;
  /** The client's `Idempotency-Key`; absent, every request runs. */
  readonly idempotencyKey?: string | undefined;
  /** The request as received, whose fingerprint a repeated key must match (keyed only). */
  readonly body?: unknown;
  /** Aborts the order when it aborts: the client going away. */
  readonly parent?: ParentCancellation | undefined;
  /** When the request arrived (`performance.now()`): the deadline runs from there. */
  readonly receivedAt?: number | undefined;
}

/**
 * How long after its deadline an order that has not yet been answered (its outcome is not
 * recorded yet) is answered `timeout` anyway: enough for the steps to stop and the outcome
 * to be recorded when the store keeps up.
 */
export const answerSlackMs = 25;

/**
 * OrderService is the one call the edge makes: {@link submit} admits an order, links its
 * cancellation to the client and the shutdown, puts it under its deadline and has the ledger
 * record and run it, and answers in one shape ({@link OrderAnswer}).
 */
export class OrderService {
  readonly pipeline: Pipeline<Order>;
  /** The pipeline's steps, in registration order. */
  readonly steps: readonly Step<Order>[];
  /** The courier pool the steps use, measured for admission. */
  readonly courierPool: MeasuredPool;
  /** Counts steps in flight across all orders. */
  readonly tracker: Tracker;
  readonly admission: Admission;
  readonly ledger: OrderLedger;
  readonly requestTimeoutMs: number;
  readonly #timeoutError: OrderError;
  /** The answer of an order whose outcome is not recorded by its deadline. */
  readonly #lateAnswer: OrderAnswer;
  readonly #log: LedgerLogger | undefined;

  /**
   * The constructor builds the pool, the tracker, the steps, the pipeline, the ledger and
   * the admission; nothing runs until an order is submitted. A pool size, limit or grace
   * outside its range throws a RangeError, a step list the pipeline refuses (empty,
   * duplicate names) a TypeError.
   */
  constructor(options: OrderServiceOptions = {}) {
    const d = defaultConfig;
    this.courierPool = new MeasuredPool(
      options.courierPool ?? new Semaphore(options.courierPoolSize ?? d.courierPoolSize),
    );
    this.tracker = new Tracker();
    const courierPool = this.courierPool;
    this.steps =
      options.steps?.(courierPool) ??
      simulatedSteps(options.delays ? { courierPool, delays: options.delays } : { courierPool });
    this.pipeline = new Pipeline(this.steps, {
      tracker: this.tracker,
      observer: options.observer,
      abandonGraceMs: options.abandonGraceMs ?? d.abandonGraceMs,
    });
    this.requestTimeoutMs = options.requestTimeoutMs ?? d.requestTimeoutMs;
    if (!Number.isFinite(this.requestTimeoutMs) || this.requestTimeoutMs <= 0) {
      throw new RangeError(
        `requestTimeoutMs must be a positive number, got ${this.requestTimeoutMs}`,
      );
    }
    this.#timeoutError = new OrderError(
      'timeout',
      `order did not complete within ${this.requestTimeoutMs} ms`,
    );
    const { kind, message } = this.#timeoutError;
    this.#lateAnswer = answerOf(
      {
        status: 'error',
        steps: this.pipeline.stepNames.map((name) => ({
          name,
          status: 'canceled',
          durationMs: this.requestTimeoutMs,
        })),
        error: { kind, message },
      },
      false,
    );
    const store = options.store ?? new MemoryOrderStore();
    this.ledger = new OrderLedger({
      store,
      ownsStore: options.ownsStore ?? options.store === undefined,
      pipeline: this.pipeline,
      steps: this.steps,
      instanceId: options.instanceId,
      leaseMs: options.leaseMs ?? d.orderLeaseMs,
      compensationTimeoutMs: options.compensationTimeoutMs ?? d.compensationTimeoutMs,
      compensationMaxAttempts: options.compensationMaxAttempts ?? d.compensationMaxAttempts,
      compensationRetryBaseMs: options.compensationRetryBaseMs ?? d.compensationRetryBaseMs,
      compensationRetryMaxMs: options.compensationRetryMaxMs ?? d.compensationRetryMaxMs,
      logger: options.logger,
      hooks: options.ledgerHooks,
      now: options.clock,
      random: options.random,
    });
    // An order waits for a courier and waits for the store twice (its start and its outcome
    // are recorded). Its own work is not estimated: past holds include orders cut off at
    // their deadline, and counting them would refuse every order after a burst of timeouts
    // with no order left to show that holds are short again.
    this.admission = new Admission({
      maxInflightOrders: options.maxInflightOrders ?? d.maxInflightOrders,
      expectedWaitMs: () => courierPool.expectedWaitMs() + 2 * store.backlogMs(),
    });
    this.#log = options.logger;
  }

  /**
   * start recovers what a dead process left running in the store and starts the ledger's
   * background sweep. Rejects if the store fails during that first sweep.
   */
  start(): Promise<void> {
    return this.ledger.start();
  }

  /**
   * submit admits, runs and records one order and resolves with its answer; it never
   * rejects. The deadline, `requestTimeoutMs` from `receivedAt`, covers every wait: the
   * store, the courier pool, the steps. An order refused by admission answers at once, and
   * nothing is recorded. An order still unanswered {@link answerSlackMs} after its deadline
   * (its outcome not recorded yet: the store is slow) is answered `timeout`; its outcome is
   * recorded when the store catches up. A store failure answers `unavailable`.
   */
  submit(request: OrderRequest): Promise<OrderAnswer> {
    const receivedAt = request.receivedAt ?? performance.now();
    const remainingMs = this.requestTimeoutMs - (performance.now() - receivedAt);
    const admitted = this.admission.admit(remainingMs);
    if (!admitted.admitted) return Promise.resolve(admitted.answer);
    const cancel = new CancelSource();
    const unlinkClient = request.parent === undefined ? undefined : link(request.parent, cancel);
    const unlinkShutdown = link(this.admission.cancellation, cancel);
    const { idempotencyKey } = request;
    const answer = this.ledger.submit(request.order, {
      idempotencyKey,
      fingerprint: idempotencyKey === undefined ? undefined : fingerprint(request.body),
      cancel,
    });
    return new Promise((resolve) => {
      let slack: NodeJS.Timeout | undefined;
      const deadline = setTimeout(
        () => {
          cancel.abort(this.#timeoutError);
          // Steps stop at once on the abort; the slack is for recording the outcome. A store
          // already behind by more than that will not record it in time: answer now.
          if (this.ledger.store.backlogMs() > answerSlackMs) {
            resolve(this.#lateAnswer);
            return;
          }
          slack = setTimeout(() => {
            resolve(this.#lateAnswer);
          }, answerSlackMs);
        },
        Math.max(0, remainingMs),
      );
      const done = (): void => {
        clearTimeout(deadline);
        clearTimeout(slack);
        unlinkClient?.();
        unlinkShutdown();
        admitted.release();
      };
      answer.then(
        (value) => {
          done();
          resolve(value);
        },
        (error: unknown) => {
          done();
          this.#log?.error({ err: error, order_id: request.order.id }, 'order store failed');
          resolve(refusalOf('unavailable', this.admission.retryAfterSeconds));
        },
      );
    });
  }

  /**
   * close waits for the orders and compensations in flight (see {@link OrderLedger.close}),
   * then closes the store if the service owns it. Orders are not aborted here: drain or
   * abort them first through {@link admission}.
   */
  close(): Promise<void> {
    return this.ledger.close();
  }
}
