import type {
  BeginInput,
  BeginResult,
  CompensationUpdate,
  DueCompensation,
  FinishInput,
  OrderStore,
  StepUpdate,
  StoredOrder,
  StoredStep,
} from './order-store.js';

type MutableOrder = { -readonly [K in keyof StoredOrder]: StoredOrder[K] } & {
  steps: StoredStep[];
};

/**
 * MemoryOrderStore keeps orders in a Map: the same contract as the SQL stores, nothing
 * durable. For tests of the HTTP layer and for embedding without persistence. Every method
 * completes synchronously before its promise settles, so concurrent calls are atomic.
 * Returned orders are copies: mutating them does not change the store.
 */
export class MemoryOrderStore implements OrderStore {
  readonly shared = false;
  readonly #orders = new Map<string, MutableOrder>();

  begin(input: BeginInput): Promise<BeginResult> {
    const existing = this.#orders.get(input.orderId);
    if (existing !== undefined) return Promise.resolve({ created: false, order: copy(existing) });
    const order: MutableOrder = {
      orderId: input.orderId,
      requestHash: input.requestHash,
      request: structuredClone(input.request),
      state: 'running',
      attempt: 1,
      owner: input.owner,
      leaseUntil: input.leaseUntil,
      steps: freshSteps(input),
      createdAt: input.now,
      updatedAt: input.now,
    };
    this.#orders.set(input.orderId, order);
    return Promise.resolve({ created: true, order: copy(order) });
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
    Object.assign(order, {
      state: 'running',
      attempt: order.attempt + 1,
      owner: input.owner,
      leaseUntil: input.leaseUntil,
      errorKind: undefined,
      outcome: undefined,
      finishedAt: undefined,
      steps: freshSteps(input),
      updatedAt: input.now,
    });
    return Promise.resolve(copy(order));
  }

  recordStep(orderId: string, owner: string, step: StepUpdate, now: number): Promise<void> {
    const order = this.#orders.get(orderId);
    if (order?.state === 'running' && order.owner === owner) updateStep(order, step, now);
    return Promise.resolve();
  }

  finish(input: FinishInput): Promise<boolean> {
    const order = this.#orders.get(input.orderId);
    if (order?.state !== 'running' || order.owner !== input.owner) return Promise.resolve(false);
    Object.assign(order, {
      state: 'finished',
      errorKind: input.errorKind,
      outcome: structuredClone(input.outcome),
      owner: undefined,
      leaseUntil: undefined,
      finishedAt: input.now,
      updatedAt: input.now,
    });
    for (const step of input.steps) updateStep(order, step, input.now);
    for (const update of input.compensations) updateCompensation(order, update, input.now);
    return Promise.resolve(true);
  }

  recordCompensation(orderId: string, update: CompensationUpdate, now: number): Promise<void> {
    const order = this.#orders.get(orderId);
    if (order !== undefined) updateCompensation(order, update, now);
    return Promise.resolve();
  }

  get(orderId: string): Promise<StoredOrder | undefined> {
    const order = this.#orders.get(orderId);
    return Promise.resolve(order === undefined ? undefined : copy(order));
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
    for (const order of this.#orders.values()) {
      const expired = order.leaseUntil === undefined || order.leaseUntil < now;
      if (order.state !== 'running' || order.owner === owner) continue;
      if (options.anyOwner !== true && !expired) continue;
      order.owner = owner;
      order.leaseUntil = leaseUntil;
      order.updatedAt = now;
      claimed.push(copy(order));
    }
    return Promise.resolve(claimed);
  }

  claimDueCompensations(
    now: number,
    claimUntil: number,
    limit: number,
  ): Promise<DueCompensation[]> {
    const due: { order: MutableOrder; index: number; at: number }[] = [];
    for (const order of this.#orders.values()) {
      if (order.state !== 'finished') continue;
      order.steps.forEach((step, index) => {
        const at = step.nextCompensationAt;
        if (isOpen(step.compensation) && !step.needsOperator && at !== undefined && at <= now) {
          due.push({ order, index, at });
        }
      });
    }
    due.sort((a, b) => a.at - b.at);
    return Promise.resolve(
      due.slice(0, limit).map(({ order, index }) => {
        const step = order.steps[index] as StoredStep;
        order.steps[index] = { ...step, nextCompensationAt: claimUntil };
        return {
          orderId: order.orderId,
          request: structuredClone(order.request),
          name: step.name,
          attempts: step.compensationAttempts,
        };
      }),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function freshSteps(input: BeginInput): StoredStep[] {
  return input.stepNames.map((name) => ({
    name,
    status: 'running',
    compensation: 'not_needed',
    compensationAttempts: 0,
    needsOperator: false,
    updatedAt: input.now,
  }));
}

function isOpen(compensation: StoredStep['compensation']): boolean {
  return compensation === 'pending' || compensation === 'compensation_failed';
}

function updateStep(order: MutableOrder, update: StepUpdate, now: number): void {
  const index = order.steps.findIndex((step) => step.name === update.name);
  const step = order.steps[index];
  if (step === undefined) return;
  order.steps[index] = {
    ...step,
    status: update.status,
    detail: update.detail,
    durationMs: update.durationMs,
    updatedAt: now,
  };
}

function updateCompensation(order: MutableOrder, update: CompensationUpdate, now: number): void {
  const index = order.steps.findIndex((step) => step.name === update.name);
  const step = order.steps[index];
  if (step === undefined) return;
  order.steps[index] = {
    ...step,
    compensation: update.compensation,
    compensationAttempts: update.attempts,
    nextCompensationAt: update.nextAttemptAt,
    compensationError: update.error,
    needsOperator: update.needsOperator === true,
    updatedAt: now,
  };
}

function copy(order: MutableOrder): StoredOrder {
  return structuredClone(order);
}
