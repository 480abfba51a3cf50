import type {
  BeginInput,
  BeginResult,
  CompensationStatus,
  CompensationUpdate,
  DueCompensation,
  FinishInput,
  OrderState,
  OrderStore,
  StepUpdate,
  StoredOrder,
  StoredStep,
  StoredStepStatus,
} from './order-store.js';

/** How many finished, settled orders a {@link MemoryOrderStore} keeps by default. */
export const defaultMaxFinishedOrders = 10_000;

export interface MemoryOrderStoreOptions {
  /**
   * The most finished orders whose compensations are all settled that the store keeps; past
   * it the oldest such order is forgotten. A positive integer, or Infinity to keep them all.
   */
  readonly maxFinishedOrders?: number;
}

/**
 * MemoryOrderStore keeps orders in a Map: the same contract as the SQL stores, nothing
 * durable. For tests and benchmarks. Every method completes synchronously before its promise
 * settles, so concurrent calls are atomic.
 *
 * Returned orders are copies: mutating them does not change the store. Requests and outcomes
 * are kept as JSON text, as the SQL stores keep them, so they read back the same way and a
 * caller mutating what it passed in cannot change the record.
 *
 * Retention is bounded: beyond `maxFinishedOrders` finished orders whose compensations are
 * all settled, the one finished longest ago is forgotten, and with it the idempotency of its
 * id (a resubmission runs anew). Running orders and orders with a compensation still open —
 * pending, being retried or flagged for an operator — are never forgotten. Orphan and
 * due-compensation lookups visit only running orders and orders with a claimable
 * compensation, so their cost does not grow with history.
 *
 * The constructor throws a RangeError if `maxFinishedOrders` is not a positive integer or
 * Infinity.
 */
export class MemoryOrderStore implements OrderStore {
  readonly shared = false;
  readonly #maxFinishedOrders: number;
  readonly #orders = new Map<string, OrderRecord>();
  /** Orders in `running` state: the only candidates of {@link claimOrphans}. */
  readonly #running = new Set<OrderRecord>();
  /** Finished orders with a compensation to claim (open, not flagged). */
  readonly #compensating = new Set<OrderRecord>();
  /**
   * Finished orders with nothing left open, in the order they settled: the ones that may be
   * forgotten, oldest first. An order that was restarted since leaves a stale entry behind,
   * told apart by its ticket and skipped. (A Set would do, but taking its oldest entry again
   * and again walks over every entry deleted before it.)
   */
  readonly #settledQueue: { readonly order: OrderRecord; readonly ticket: number }[] = [];
  #settledHead = 0;
  #settledCount = 0;
  #tickets = 0;

  constructor(options: MemoryOrderStoreOptions = {}) {
    const max = options.maxFinishedOrders ?? defaultMaxFinishedOrders;
    if (max !== Infinity && (!Number.isInteger(max) || max < 1)) {
      throw new RangeError(
        `maxFinishedOrders must be a positive integer or Infinity, got ${String(max)}`,
      );
    }
    this.#maxFinishedOrders = max;
  }

  /** size is the number of orders kept, in any state. */
  get size(): number {
    return this.#orders.size;
  }

  begin(input: BeginInput): Promise<BeginResult> {
    const existing = this.#orders.get(input.orderId);
    if (existing !== undefined) {
      return Promise.resolve({ created: false, order: existing.snapshot() });
    }
    const order = new OrderRecord(input);
    this.#orders.set(input.orderId, order);
    this.#running.add(order);
    // The caller's own request object goes back to it: the store keeps only its JSON.
    return Promise.resolve({ created: true, order: order.copyWith(input.request) });
  }

  restart(input: BeginInput): Promise<StoredOrder | undefined> {
    const order = this.#orders.get(input.orderId);
    if (
      order === undefined ||
      order.state !== 'finished' ||
      order.requestHash !== input.requestHash ||
      order.steps.some((step) => isOpen(step.compensation))
    ) {
      return Promise.resolve(undefined);
    }
    order.restart(input);
    this.#reindex(order);
    return Promise.resolve(order.snapshot());
  }

  recordStep(orderId: string, owner: string, step: StepUpdate, now: number): Promise<void> {
    const order = this.#orders.get(orderId);
    if (order?.state === 'running' && order.owner === owner) order.updateStep(step, now);
    return Promise.resolve();
  }

  finish(input: FinishInput): Promise<boolean> {
    const order = this.#orders.get(input.orderId);
    if (order?.state !== 'running' || order.owner !== input.owner) return Promise.resolve(false);
    order.finish(input);
    this.#reindex(order);
    return Promise.resolve(true);
  }

  recordCompensation(orderId: string, update: CompensationUpdate, now: number): Promise<void> {
    const order = this.#orders.get(orderId);
    if (order !== undefined) {
      order.updateCompensation(update, now);
      this.#reindex(order);
    }
    return Promise.resolve();
  }

  get(orderId: string): Promise<StoredOrder | undefined> {
    return Promise.resolve(this.#orders.get(orderId)?.snapshot());
  }

  renewLeases(
    owner: string,
    orderIds: readonly string[],
    leaseUntil: number,
    now: number,
  ): Promise<void> {
    for (const orderId of orderIds) {
      const order = this.#orders.get(orderId);
      if (order?.state === 'running' && order.owner === owner) {
        order.leaseUntil = leaseUntil;
        order.updatedAt = now;
      }
    }
    return Promise.resolve();
  }

  claimOrphans(
    owner: string,
    now: number,
    leaseUntil: number,
    options: { anyOwner?: boolean } = {},
  ): Promise<StoredOrder[]> {
    const claimed: StoredOrder[] = [];
    for (const order of this.#running) {
      const expired = order.leaseUntil === undefined || order.leaseUntil < now;
      if (order.owner === owner) continue;
      if (options.anyOwner !== true && !expired) continue;
      order.owner = owner;
      order.leaseUntil = leaseUntil;
      order.updatedAt = now;
      claimed.push(order.snapshot());
    }
    return Promise.resolve(claimed);
  }

  claimDueCompensations(
    now: number,
    claimUntil: number,
    limit: number,
  ): Promise<DueCompensation[]> {
    const due: { order: OrderRecord; step: StepRecord; at: number }[] = [];
    for (const order of this.#compensating) {
      for (const step of order.steps) {
        const at = step.nextCompensationAt;
        if (isClaimable(step) && at !== undefined && at <= now) due.push({ order, step, at });
      }
    }
    due.sort((a, b) => a.at - b.at);
    return Promise.resolve(
      due.slice(0, limit).map(({ order, step }) => {
        step.nextCompensationAt = claimUntil;
        return {
          orderId: order.orderId,
          request: JSON.parse(order.requestJson) as unknown,
          name: step.name,
          attempts: step.compensationAttempts,
        };
      }),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * reindex files the order under the lookups its state calls for after a write, and forgets
   * the oldest settled orders beyond the cap.
   */
  #reindex(order: OrderRecord): void {
    if (order.state === 'running') {
      this.#running.add(order);
      this.#compensating.delete(order);
      this.#unsettle(order);
      return;
    }
    this.#running.delete(order);
    if (order.steps.some(isClaimable)) this.#compensating.add(order);
    else this.#compensating.delete(order);
    if (order.steps.some((step) => isOpen(step.compensation))) this.#unsettle(order);
    else this.#settle(order);
  }

  #settle(order: OrderRecord): void {
    if (order.settledTicket !== 0) return;
    order.settledTicket = ++this.#tickets;
    this.#settledQueue.push({ order, ticket: order.settledTicket });
    this.#settledCount++;
    while (this.#settledCount > this.#maxFinishedOrders) {
      const oldest = this.#settledQueue[this.#settledHead++];
      if (oldest === undefined) break;
      if (oldest.order.settledTicket !== oldest.ticket) continue;
      oldest.order.settledTicket = 0;
      this.#settledCount--;
      this.#orders.delete(oldest.order.orderId);
    }
    // Drop the consumed head once it is most of the array: amortized O(1) per order.
    if (this.#settledHead > 1024 && this.#settledHead * 2 > this.#settledQueue.length) {
      this.#settledQueue.splice(0, this.#settledHead);
      this.#settledHead = 0;
    }
  }

  #unsettle(order: OrderRecord): void {
    if (order.settledTicket === 0) return;
    order.settledTicket = 0;
    this.#settledCount--;
  }
}

/**
 * StepRecord is the store's own, mutable record of a step, of one fixed shape; callers only
 * ever see {@link StepRecord.snapshot}s.
 */
class StepRecord {
  readonly name: string;
  status: StoredStepStatus = 'running';
  detail: string | undefined = undefined;
  durationMs: number | undefined = undefined;
  compensation: CompensationStatus = 'not_needed';
  compensationAttempts = 0;
  nextCompensationAt: number | undefined = undefined;
  compensationError: string | undefined = undefined;
  needsOperator = false;
  updatedAt: number;

  constructor(name: string, now: number) {
    this.name = name;
    this.updatedAt = now;
  }

  snapshot(): StoredStep {
    return {
      name: this.name,
      status: this.status,
      detail: this.detail,
      durationMs: this.durationMs,
      compensation: this.compensation,
      compensationAttempts: this.compensationAttempts,
      nextCompensationAt: this.nextCompensationAt,
      compensationError: this.compensationError,
      needsOperator: this.needsOperator,
      updatedAt: this.updatedAt,
    };
  }
}

/** OrderRecord is the store's own, mutable record of an order. */
class OrderRecord {
  readonly orderId: string;
  readonly requestHash: string;
  readonly requestJson: string;
  state: OrderState = 'running';
  attempt = 1;
  owner: string | undefined;
  leaseUntil: number | undefined;
  errorKind: string | undefined = undefined;
  outcomeJson: string | undefined = undefined;
  steps: StepRecord[];
  readonly createdAt: number;
  updatedAt: number;
  finishedAt: number | undefined = undefined;
  /** The store's ticket of this order in its queue of settled orders; 0 while not settled. */
  settledTicket = 0;

  constructor(input: BeginInput) {
    this.orderId = input.orderId;
    this.requestHash = input.requestHash;
    this.requestJson = JSON.stringify(input.request);
    this.owner = input.owner;
    this.leaseUntil = input.leaseUntil;
    this.steps = freshSteps(input);
    this.createdAt = input.now;
    this.updatedAt = input.now;
  }

  restart(input: BeginInput): void {
    this.state = 'running';
    this.attempt += 1;
    this.owner = input.owner;
    this.leaseUntil = input.leaseUntil;
    this.errorKind = undefined;
    this.outcomeJson = undefined;
    this.finishedAt = undefined;
    this.steps = freshSteps(input);
    this.updatedAt = input.now;
  }

  finish(input: FinishInput): void {
    this.state = 'finished';
    this.errorKind = input.errorKind;
    this.outcomeJson = input.outcome === undefined ? undefined : JSON.stringify(input.outcome);
    this.owner = undefined;
    this.leaseUntil = undefined;
    this.finishedAt = input.now;
    this.updatedAt = input.now;
    for (const step of input.steps) this.updateStep(step, input.now);
    for (const update of input.compensations) this.updateCompensation(update, input.now);
  }

  updateStep(update: StepUpdate, now: number): void {
    const step = this.#step(update.name);
    if (step === undefined) return;
    step.status = update.status;
    step.detail = update.detail;
    step.durationMs = update.durationMs;
    step.updatedAt = now;
  }

  updateCompensation(update: CompensationUpdate, now: number): void {
    const step = this.#step(update.name);
    if (step === undefined) return;
    step.compensation = update.compensation;
    step.compensationAttempts = update.attempts;
    step.nextCompensationAt = update.nextAttemptAt;
    step.compensationError = update.error;
    step.needsOperator = update.needsOperator === true;
    step.updatedAt = now;
  }

  #step(name: string): StepRecord | undefined {
    for (const step of this.steps) if (step.name === name) return step;
    return undefined;
  }

  /** snapshot is a copy of the order for a caller. */
  snapshot(): StoredOrder {
    return this.copyWith(JSON.parse(this.requestJson) as unknown);
  }

  /**
   * copyWith is a copy of the order with `request` as its request: the order's own request
   * as the caller gave it, so handing it back shares nothing with the store.
   */
  copyWith(request: unknown): StoredOrder {
    return {
      orderId: this.orderId,
      requestHash: this.requestHash,
      request,
      state: this.state,
      attempt: this.attempt,
      owner: this.owner,
      leaseUntil: this.leaseUntil,
      errorKind: this.errorKind,
      outcome:
        this.outcomeJson === undefined ? undefined : (JSON.parse(this.outcomeJson) as unknown),
      steps: this.steps.map((step) => step.snapshot()),
      createdAt: this.createdAt,
      updatedAt: this.updatedAt,
      finishedAt: this.finishedAt,
    };
  }
}

function freshSteps(input: BeginInput): StepRecord[] {
  return input.stepNames.map((name) => new StepRecord(name, input.now));
}

function isOpen(compensation: CompensationStatus): boolean {
  return compensation === 'pending' || compensation === 'compensation_failed';
}

/** isClaimable: the step's compensation is open and not waiting for an operator. */
function isClaimable(step: StepRecord): boolean {
  return isOpen(step.compensation) && !step.needsOperator;
}
