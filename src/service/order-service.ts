import {
  CancelSource,
  link,
  type Cancellation,
  type ParentCancellation,
} from '../core/cancellation.js';
import type { Pool } from '../core/semaphore.js';
import { Tracker } from '../core/tracker.js';
import { fingerprint } from '../ledger/fingerprint.js';
import type { LedgerHooks, LedgerLogger } from '../ledger/ledger-options.js';
import { OrderLedger } from '../ledger/order-ledger.js';
import type { OrderRun, OrderStore } from '../ledger/order-store.js';
import type { Submission } from '../ledger/submission.js';
import { OrderError, kindMessage, type ErrorKind } from '../order/errors.js';
import type { Order } from '../order/order.js';
import { Pipeline, type PipelineObserver } from '../order/pipeline.js';
import type { Step } from '../order/step.js';
import { Admission, type Admitted } from './admission.js';
import { MeasuredPool } from './measured-pool.js';
import { answerOf, refusalOf, type OrderAnswer } from './order-answer.js';

/**
 * ServiceSettings are the numbers that shape the service. Every one is required: their
 * defaults are the configuration's `defaultServiceSettings` (config.ts), so
 * `{ ...defaultServiceSettings, store, courierPool, steps }` is a complete set of options.
 */
export interface ServiceSettings {
  /** Deadline of one order, from when its request arrived, covering every wait. */
  readonly requestTimeoutMs: number;
  /** Orders in flight before new ones are refused `overloaded`: a memory guard. */
  readonly maxInflightOrders: number;
  /**
   * The target courier wait: once every wait has stayed above it for `overloadWindowMs` (a
   * standing queue), the longest wait admitted until the queue is gone.
   */
  readonly overloadWaitMs: number;
  /** How long every courier wait must stay above `overloadWaitMs` for a queue to stand. */
  readonly overloadWindowMs: number;
  /** `Retry-After` of a refusal, in seconds. */
  readonly retryAfterSeconds: number;
  /**
   * How long after its deadline an order whose outcome is not recorded yet is answered
   * `timeout` anyway (its outcome is recorded when the store catches up).
   */
  readonly answerSlackMs: number;
  /** Grace for steps that ignore an abort before the order answers without them. */
  readonly abandonGraceMs: number;
  /** How long this instance's claim on its running orders lasts without renewal. */
  readonly orderLeaseMs: number;
  readonly compensationTimeoutMs: number;
  readonly compensationMaxAttempts: number;
  readonly compensationRetryBaseMs: number;
  readonly compensationRetryMaxMs: number;
}

/** OrderServiceOptions are the ready parts of a service and the numbers that shape it. */
export interface OrderServiceOptions extends ServiceSettings {
  /** Where orders are recorded. */
  readonly store: OrderStore;
  /** {@link OrderService.close} also closes the store; false by default. */
  readonly ownsStore?: boolean | undefined;
  /** The courier pool: in-process, distributed or observed. */
  readonly courierPool: Pool;
  /** The steps of every order; gets the courier pool the steps must use (measured). */
  readonly steps: (courierPool: Pool) => Step<Order>[];
  /**
   * Whether the parts outside the process can serve (a shared courier pool); always by
   * default. Read by {@link OrderService.readiness}.
   */
  readonly dependenciesReady?: (() => boolean) | undefined;
  /** Watches every order (metrics, traces, the dashboard); none by default. */
  readonly observer?: PipelineObserver<Order> | undefined;
  /** This instance's id in a shared store; random by default. */
  readonly instanceId?: string | undefined;
  readonly logger?: LedgerLogger | undefined;
  readonly ledgerHooks?: LedgerHooks | undefined;
  /** The ledger's wall clock in epoch milliseconds (tests move it); `Date.now` by default. */
  readonly clock?: (() => number) | undefined;
  /** The ledger's jitter source in [0, 1); `Math.random` by default. */
  readonly random?: (() => number) | undefined;
}

/**
 * ServiceUnavailable is how a call of the service other than {@link OrderService.submit}
 * fails when the store cannot answer: kind `unavailable`, with the `Retry-After` to send.
 * The store's own error is logged, never shown to a client.
 */
export class ServiceUnavailable extends Error {
  readonly kind = 'unavailable' satisfies ErrorKind;
  constructor(readonly retryAfterSeconds: number) {
    super(kindMessage('unavailable'));
    this.name = 'ServiceUnavailable';
  }
}

/** Readiness says whether the service takes orders now, and if not, why. */
export type Readiness =
  | { readonly ready: true }
  | {
      readonly ready: false;
      readonly kind: 'shutting_down' | 'unavailable';
      readonly message: string;
    };

/** ServiceLoad is what the service holds right now (the dashboard shows it). */
export interface ServiceLoad {
  readonly pool: { readonly size: number; readonly inUse: number; readonly waiting: number };
  readonly stepsInFlight: number;
  readonly ordersInFlight: number;
  /** Orders refused before any step ran, since start, by reason. */
  readonly refused: { readonly overloaded: number; readonly shutting_down: number };
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
 * OrderService is the one call the edge makes: {@link submit} admits an order, links its
 * cancellation to the client and the shutdown, puts it under its deadline and has the ledger
 * record and run it, and answers in one shape ({@link OrderAnswer}). It also answers what
 * else the edge asks: an order's record ({@link recordedRun}), an operator's settlement of a
 * flag ({@link settleFlag}), {@link readiness}, {@link load} and the runs that need attention
 * ({@link openCompensations}). It takes its parts ready-made: the composition root
 * (server.ts) decides which store and pool they are.
 */
export class OrderService {
  readonly pipeline: Pipeline<Order>;
  /** The pipeline's steps, in registration order. */
  readonly steps: readonly Step<Order>[];
  /** The courier pool the steps use, measured for admission. */
  readonly courierPool: MeasuredPool;
  /** Counts steps in flight across all orders. */
  readonly tracker: Tracker;
  /** Decides which orders are taken; the composition root drains through it. */
  readonly admission: Admission;
  /** Records and runs the orders; for the composition root and tests. */
  readonly ledger: OrderLedger;
  readonly requestTimeoutMs: number;
  readonly #answerSlackMs: number;
  readonly #timeoutError: OrderError;
  /** The answer of an order whose outcome is not recorded by its deadline. */
  readonly #lateAnswer: OrderAnswer;
  readonly #conflict: OrderAnswer;
  readonly #inProgress: OrderAnswer;
  readonly #unavailable: OrderAnswer;
  readonly #dependenciesReady: () => boolean;
  readonly #log: LedgerLogger | undefined;
  /** The place of each order admitted and not done, for the pipeline's observer. */
  readonly #places = new WeakMap<Order, Admitted>();

  /**
   * The constructor builds the tracker, the steps, the pipeline, the ledger and the
   * admission around the given parts; nothing runs until an order is submitted. A limit,
   * deadline or grace outside its range throws a RangeError, a step list the pipeline
   * refuses (empty, duplicate names) a TypeError.
   */
  constructor(options: OrderServiceOptions) {
    // Admission counts an order as queued until its courier is granted. The pool sees only
    // the cancellation its steps share, which the pipeline's observer, told of each order's
    // start, maps to the order's place.
    const placeOfSteps = new WeakMap<Cancellation, Admitted>();
    this.courierPool = new MeasuredPool(options.courierPool, {
      granted: (cancel, waitedMs) => {
        if (cancel !== undefined) placeOfSteps.get(cancel)?.courierGranted(waitedMs);
      },
    });
    this.tracker = new Tracker();
    this.steps = options.steps(this.courierPool);
    const places = this.#places;
    const observer = options.observer;
    this.pipeline = new Pipeline(this.steps, {
      tracker: this.tracker,
      observer: {
        orderStarted: (order, cancel, startedAt) => {
          const settled = observer?.orderStarted(order, cancel, startedAt);
          const place = places.get(order);
          if (place === undefined) return settled;
          placeOfSteps.set(cancel, place);
          return (outcome) => {
            place.stepsSettled();
            settled?.(outcome);
          };
        },
      },
      abandonGraceMs: options.abandonGraceMs,
    });
    this.requestTimeoutMs = options.requestTimeoutMs;
    if (!Number.isFinite(this.requestTimeoutMs) || this.requestTimeoutMs <= 0) {
      throw new RangeError(
        `requestTimeoutMs must be a positive number, got ${this.requestTimeoutMs}`,
      );
    }
    this.#answerSlackMs = options.answerSlackMs;
    if (!Number.isFinite(this.#answerSlackMs) || this.#answerSlackMs < 0) {
      throw new RangeError(`answerSlackMs must be a finite number ≥ 0, got ${this.#answerSlackMs}`);
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
    const { store } = options;
    this.ledger = new OrderLedger({
      store,
      ownsStore: options.ownsStore === true,
      pipeline: this.pipeline,
      steps: this.steps,
      instanceId: options.instanceId,
      leaseMs: options.orderLeaseMs,
      compensationTimeoutMs: options.compensationTimeoutMs,
      compensationMaxAttempts: options.compensationMaxAttempts,
      compensationRetryBaseMs: options.compensationRetryBaseMs,
      compensationRetryMaxMs: options.compensationRetryMaxMs,
      logger: options.logger,
      hooks: options.ledgerHooks,
      now: options.clock,
      random: options.random,
    });
    // An order waits for the store (its start is recorded), for a courier, for its steps and
    // for the store again (its outcome is recorded): admission measures each.
    this.admission = new Admission({
      courierPool: this.courierPool,
      storeBacklogMs: () => store.backlogMs(),
      maxInflightOrders: options.maxInflightOrders,
      retryAfterSeconds: options.retryAfterSeconds,
      overloadWaitMs: options.overloadWaitMs,
      overloadWindowMs: options.overloadWindowMs,
    });
    // Refusals are built once: they must not cost an allocation per request.
    this.#conflict = refusalOf('idempotency_conflict');
    this.#inProgress = refusalOf('order_in_progress', this.ledger.retryAfterSeconds);
    this.#unavailable = refusalOf('unavailable', options.retryAfterSeconds);
    this.#dependenciesReady = options.dependenciesReady ?? (() => true);
    this.#log = options.logger;
  }

  /** stepNames are the names of the steps of every order, in registration order. */
  get stepNames(): readonly string[] {
    return this.pipeline.stepNames;
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
   * nothing is recorded. An order still unanswered `answerSlackMs` after its deadline
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
    // The steps see the deadline on the order: an upstream call that could not finish before
    // it is not started, and one in flight is cut at it.
    const order = { ...request.order, deadlineAt: Date.now() + remainingMs };
    this.#places.set(order, admitted);
    const submission = this.ledger.submit(order, {
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
          if (this.ledger.store.backlogMs() > this.#answerSlackMs) {
            resolve(this.#lateAnswer);
            return;
          }
          slack = setTimeout(() => {
            resolve(this.#lateAnswer);
          }, this.#answerSlackMs);
        },
        Math.max(0, remainingMs),
      );
      const done = (): void => {
        clearTimeout(deadline);
        clearTimeout(slack);
        unlinkClient?.();
        unlinkShutdown();
        this.#places.delete(order);
        admitted.release();
      };
      submission.then(
        (value) => {
          done();
          resolve(this.#answerOf(value));
        },
        (error: unknown) => {
          done();
          this.#log?.error({ err: error, order_id: request.order.id }, 'order store failed');
          resolve(this.#unavailable);
        },
      );
    });
  }

  /**
   * #answerOf answers for what the ledger did. An outcome that says the service could not
   * serve the order for now (`unavailable`: the store or the shared pool; `interrupted`: the
   * instance died) tells when to try again, as every refusal does — unless a compensation of
   * its run waits for an operator: trying again changes nothing until the operator acts.
   */
  #answerOf(submission: Submission): OrderAnswer {
    if (submission === 'idempotency_conflict') return this.#conflict;
    if (submission === 'order_in_progress') return this.#inProgress;
    const answer = answerOf(submission.outcome, submission.replayed, submission.cause);
    if (submission.needsOperator === true) return { ...answer, needsOperator: true };
    const kind = answer.error?.kind;
    if (kind === 'unavailable' || kind === 'interrupted') {
      return { ...answer, retryAfterSeconds: this.admission.retryAfterSeconds };
    }
    return answer;
  }

  /**
   * recordedRun resolves with the most recent run of `orderId` as recorded, or undefined if
   * there is none. Rejects with {@link ServiceUnavailable} if the store fails.
   */
  recordedRun(orderId: string): Promise<OrderRun | undefined> {
    return this.#fromStore(this.ledger.get(orderId));
  }

  /**
   * settleFlag records that an operator settled the compensation `step` of run `runId`,
   * flagged after its last attempt. Resolves false if there is no such flag; rejects with
   * {@link ServiceUnavailable} if the store fails.
   */
  settleFlag(runId: string, step: string): Promise<boolean> {
    return this.#fromStore(this.ledger.settleFlag(runId, step));
  }

  /**
   * openCompensations resolves with up to `limit` runs whose compensation is open or flagged
   * for an operator, oldest first. Rejects with {@link ServiceUnavailable} if the store fails.
   */
  openCompensations(limit: number): Promise<OrderRun[]> {
    return this.#fromStore(this.ledger.openCompensations(limit));
  }

  /** #fromStore is `call`, with a store failure logged and turned into {@link ServiceUnavailable}. */
  async #fromStore<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (error) {
      this.#log?.error({ err: error }, 'order store failed');
      throw new ServiceUnavailable(this.admission.retryAfterSeconds);
    }
  }

  /**
   * readiness tells whether orders are taken now: not once the service drains
   * (`shutting_down`), nor while a part outside the process cannot serve (`unavailable`).
   */
  readiness(): Readiness {
    if (this.admission.closed) {
      return { ready: false, kind: 'shutting_down', message: 'the service is draining' };
    }
    if (!this.#dependenciesReady()) {
      return { ready: false, kind: 'unavailable', message: 'the courier pool is unavailable' };
    }
    return { ready: true };
  }

  /** load is what the service holds right now: the courier pool, steps and orders in flight. */
  load(): ServiceLoad {
    const pool = this.courierPool;
    return {
      pool: { size: pool.size, inUse: pool.inUse, waiting: pool.waiting },
      stepsInFlight: this.tracker.active,
      ordersInFlight: this.admission.inflight,
      refused: this.admission.refused,
    };
  }

  /**
   * shutDown drains: new orders are refused `shutting_down` at once; orders in flight get up
   * to `drainTimeoutMs` to finish, then are aborted with `shutting_down` and answer within
   * their abandon grace. Resolves once none is in flight, with how many orders were aborted
   * (0 when the drain finished in time). It closes nothing: {@link close} does.
   */
  async shutDown(drainTimeoutMs: number): Promise<number> {
    const { admission } = this;
    admission.close();
    if (await settlesWithin(admission.drained(), drainTimeoutMs)) return 0;
    const aborted = admission.inflight;
    admission.abortInflight();
    await admission.drained();
    return aborted;
  }

  /**
   * close waits for the orders and compensations in flight (see {@link OrderLedger.close}),
   * then closes the store if the service owns it. Orders are not aborted here: drain them
   * first with {@link shutDown}.
   */
  close(): Promise<void> {
    return this.ledger.close();
  }
}

/** settlesWithin resolves true if `promise` settles within `ms`, else false; no timer lingers. */
async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
