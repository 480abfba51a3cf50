import { hash as digest, randomUUID } from 'node:crypto';
import type { ParentCancellation } from '../core/cancellation.js';
import { kindMessage } from '../order/errors.js';
import type { Order } from '../order/order.js';
import type { OrderOutcome, Pipeline, StepResult } from '../order/pipeline.js';
import {
  compensateInReverse,
  compensateStep,
  needsCompensation,
  retryDelayMs,
  type CompensationAttempt,
} from '../order/saga.js';
import type { Step } from '../order/step.js';
import type {
  CompensationStatus,
  CompensationUpdate,
  DueCompensation,
  OrderStore,
  StoredOrder,
} from './order-store.js';

/** One step of a recorded outcome: the pipeline's result and, for a failed order, its undoing. */
export interface RecordedStep {
  readonly name: string;
  /** A {@link StepResult} status, or `interrupted` for a step cut off by a crash. */
  readonly status: string;
  readonly durationMs: number;
  readonly detail?: string | undefined;
  readonly compensation?: CompensationStatus | undefined;
}

/** RecordedOutcome is an order's outcome as answered, and as replayed to duplicates. */
export interface RecordedOutcome {
  readonly status: 'ok' | 'error';
  readonly steps: readonly RecordedStep[];
  readonly error?: { readonly kind: string; readonly message: string } | undefined;
}

/** SubmitResult is what {@link OrderLedger.submit} decided. */
export type SubmitResult =
  /** The outcome; `replayed` unless this very call executed the order. */
  | { readonly kind: 'outcome'; readonly outcome: RecordedOutcome; readonly replayed: boolean }
  /** The id is recorded with another request body. */
  | { readonly kind: 'conflict' }
  /** Another instance runs the order, or its compensations are still being retried. */
  | { readonly kind: 'in_progress'; readonly retryAfterSeconds: number };

/**
 * Outcome kinds after which the same order may be submitted again and runs anew (once its
 * compensations are settled): they say nothing about the order itself. Every other
 * outcome, success included, is final and replayed.
 */
export const retryableKinds: ReadonlySet<string> = new Set([
  'timeout',
  'canceled',
  'interrupted',
  'overloaded',
  'shutting_down',
]);

/** Hooks for metrics; each must not throw. */
export interface LedgerHooks {
  /** A compensation attempt ended; `status` is `compensated` or `compensation_failed`. */
  compensationAttempted?(step: string, status: 'compensated' | 'compensation_failed'): void;
  /** A compensation exhausted its attempts: an operator must settle it. */
  operatorFlagged?(orderId: string, step: string): void;
  /** An order left running by a dead instance was recovered as `interrupted`. */
  orderRecovered?(orderId: string): void;
}

/** The subset of a pino logger the ledger writes to. */
export interface LedgerLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface OrderLedgerOptions {
  readonly store: OrderStore;
  /** {@link OrderLedger.close} also closes the store. */
  readonly ownsStore?: boolean;
  readonly pipeline: Pipeline<Order>;
  /** The pipeline's steps, for their compensations. */
  readonly steps: readonly Step<Order>[];
  /** Rebuilds an order from its recorded request body (recovery, compensation retries). */
  readonly toOrder: (request: unknown) => Order;
  /** This instance's id in the store; random by default. */
  readonly instanceId?: string;
  /** How long an instance's claim on its running orders lasts without renewal. */
  readonly leaseMs?: number;
  /** Deadline of one compensation attempt. */
  readonly compensationTimeoutMs?: number;
  /** Attempts per compensation before it is flagged for an operator. */
  readonly compensationMaxAttempts?: number;
  /** First retry delay of a failed compensation; doubles per attempt. */
  readonly compensationRetryBaseMs?: number;
  /** Cap of the retry delay. */
  readonly compensationRetryMaxMs?: number;
  /** Period of the background sweep (lease renewal, recovery, compensation retries). */
  readonly sweepIntervalMs?: number;
  readonly logger?: LedgerLogger | undefined;
  readonly hooks?: LedgerHooks | undefined;
  /** Wall clock in epoch milliseconds; `Date.now` by default. */
  readonly now?: () => number;
  /** Jitter source in [0, 1); `Math.random` by default. */
  readonly random?: () => number;
}

export const ledgerDefaults = {
  leaseMs: 15_000,
  compensationTimeoutMs: 2_000,
  compensationMaxAttempts: 8,
  compensationRetryBaseMs: 500,
  compensationRetryMaxMs: 60_000,
  sweepIntervalMs: 1_000,
} as const;

const silentLogger: LedgerLogger = { info: noop, warn: noop, error: noop };

/**
 * OrderLedger makes order submission exactly-once over a durable {@link OrderStore}.
 *
 * - {@link submit} runs an order id at most once at a time: the store's insert-if-absent
 *   decides which caller executes; a duplicate in this instance joins the running
 *   execution, one in another instance gets `in_progress`; a finished order is replayed.
 * - A failed order is compensated (saga) before it is answered, in reverse registration
 *   order, each compensation under its own deadline; failed compensations are retried with
 *   exponential backoff and jitter by a background sweep, then flagged for an operator.
 * - The sweep also renews this instance's leases and recovers orders whose owner died:
 *   they are compensated and recorded as failed with kind `interrupted`.
 *
 * {@link start} runs a first sweep (recovery) and schedules the next; {@link close} stops
 * the sweep and waits for orders and compensations in flight.
 */
export class OrderLedger {
  readonly instanceId: string;
  readonly #store: OrderStore;
  readonly #ownsStore: boolean;
  readonly #pipeline: Pipeline<Order>;
  readonly #steps: readonly Step<Order>[];
  readonly #toOrder: (request: unknown) => Order;
  readonly #options: Record<keyof typeof ledgerDefaults, number>;
  readonly #log: LedgerLogger;
  readonly #hooks: LedgerHooks;
  readonly #now: () => number;
  readonly #random: () => number;
  /** Executions running in this instance, by order id: duplicates join them. */
  readonly #running = new Map<string, { hash: string; result: Promise<SubmitResult> }>();
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  #firstSweep = true;
  #closed = false;

  constructor(options: OrderLedgerOptions) {
    this.#store = options.store;
    this.#ownsStore = options.ownsStore === true;
    this.#pipeline = options.pipeline;
    this.#steps = options.steps;
    this.#toOrder = options.toOrder;
    this.instanceId = options.instanceId ?? randomUUID();
    this.#options = {
      leaseMs: options.leaseMs ?? ledgerDefaults.leaseMs,
      compensationTimeoutMs: options.compensationTimeoutMs ?? ledgerDefaults.compensationTimeoutMs,
      compensationMaxAttempts:
        options.compensationMaxAttempts ?? ledgerDefaults.compensationMaxAttempts,
      compensationRetryBaseMs:
        options.compensationRetryBaseMs ?? ledgerDefaults.compensationRetryBaseMs,
      compensationRetryMaxMs:
        options.compensationRetryMaxMs ?? ledgerDefaults.compensationRetryMaxMs,
      sweepIntervalMs: options.sweepIntervalMs ?? ledgerDefaults.sweepIntervalMs,
    };
    this.#log = options.logger ?? silentLogger;
    this.#hooks = options.hooks ?? {};
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  /** get resolves with the recorded order, or undefined. */
  get(orderId: string): Promise<StoredOrder | undefined> {
    return this.#store.get(orderId);
  }

  /**
   * submit executes `order` once, or answers for the execution that did. `request` is the
   * validated request body: its canonical hash is the idempotency check. Rejects only if
   * the store fails; the order is then left for recovery (if it had started).
   */
  submit(
    order: Order,
    request: unknown,
    options: { parent?: ParentCancellation; deadlineMs?: number } = {},
  ): Promise<SubmitResult> {
    const hash = requestHash(request);
    const running = this.#running.get(order.id);
    if (running !== undefined) {
      if (running.hash !== hash) return Promise.resolve({ kind: 'conflict' });
      return running.result.then(asReplayed);
    }
    // Registered synchronously, before any await: every later duplicate in this instance
    // finds it and joins, so this instance never races itself in the store.
    const result = this.#submitOnce(order, request, hash, options);
    const entry = { hash, result };
    this.#running.set(order.id, entry);
    const forget = (): void => {
      if (this.#running.get(order.id) === entry) this.#running.delete(order.id);
    };
    result.then(forget, forget);
    return result;
  }

  async #submitOnce(
    order: Order,
    request: unknown,
    hash: string,
    options: { parent?: ParentCancellation; deadlineMs?: number },
  ): Promise<SubmitResult> {
    const now = this.#now();
    const input = {
      orderId: order.id,
      requestHash: hash,
      request,
      stepNames: this.#pipeline.stepNames,
      owner: this.instanceId,
      now,
      leaseUntil: now + this.#options.leaseMs,
    };
    const begun = await this.#store.begin(input);
    if (begun.created) return this.#execute(order, options);
    const existing = begun.order;
    if (existing.requestHash !== hash) return { kind: 'conflict' };
    if (existing.state === 'finished' && retryableKinds.has(existing.errorKind ?? '')) {
      if ((await this.#store.restart(input)) !== undefined) return this.#execute(order, options);
      const current = await this.#store.get(order.id);
      if (current === undefined || current.state === 'running' || hasOpenCompensation(current)) {
        return this.#inProgress();
      }
      return { kind: 'outcome', outcome: current.outcome as RecordedOutcome, replayed: true };
    }
    if (existing.state === 'running') return this.#inProgress();
    return { kind: 'outcome', outcome: existing.outcome as RecordedOutcome, replayed: true };
  }

  #inProgress(): SubmitResult {
    return {
      kind: 'in_progress',
      retryAfterSeconds: Math.max(1, Math.ceil(this.#options.sweepIntervalMs / 1000)),
    };
  }

  /** execute runs the order this instance owns, compensates it if it failed, records it. */
  async #execute(
    order: Order,
    options: { parent?: ParentCancellation; deadlineMs?: number },
  ): Promise<SubmitResult> {
    const owner = this.instanceId;
    // Step records are written in order, one at a time, and all awaited before `finish`.
    let stepWrites: Promise<void> = Promise.resolve();
    let stepWriteError: Error | undefined;
    const onWriteError = (error: unknown): void => {
      stepWriteError ??= error instanceof Error ? error : new Error(String(error));
    };
    const outcome = await this.#pipeline.run(order, {
      ...options,
      onStepSettled: (result) => {
        const update = toStepUpdate(result);
        stepWrites = stepWrites
          .then(() => this.#store.recordStep(order.id, owner, update, this.#now()))
          .catch(onWriteError);
      },
    });
    // A successful order has nothing to undo: no compensation round, no extra turn.
    const compensations =
      outcome.status === 'ok' ? [] : await this.#compensateFailed(order, outcome);
    const recorded = recordOutcome(outcome, compensations);
    await stepWrites;
    if (stepWriteError !== undefined) throw stepWriteError;
    const finished = await this.#store.finish({
      orderId: order.id,
      owner,
      errorKind: outcome.error?.kind,
      outcome: recorded,
      steps: outcome.steps.map(toStepUpdate),
      compensations,
      now: this.#now(),
    });
    if (finished) return { kind: 'outcome', outcome: recorded, replayed: false };
    // Our lease expired and another instance recovered the order meanwhile: its record wins.
    this.#log.warn({ orderId: order.id }, 'order was taken over before it finished');
    const current = await this.#store.get(order.id);
    if (current?.state !== 'finished') return this.#inProgress();
    return { kind: 'outcome', outcome: current.outcome as RecordedOutcome, replayed: true };
  }

  /** compensateFailed runs the first compensation attempt of a failed order's steps. */
  async #compensateFailed(order: Order, outcome: OrderOutcome): Promise<CompensationUpdate[]> {
    const toUndo = new Set(
      outcome.steps.filter((s) => needsCompensation(s.status)).map((s) => s.name),
    );
    const attempts = await compensateInReverse(this.#steps, order, toUndo, {
      timeoutMs: this.#options.compensationTimeoutMs,
    });
    return [...attempts].map(([name, attempt]) => this.#afterAttempt(order.id, name, 1, attempt));
  }

  /**
   * afterAttempt turns a compensation attempt into the state to record: done, retry later
   * with backoff, or, past the attempt limit, flagged for an operator (logged, and hooked
   * for metrics).
   */
  #afterAttempt(
    orderId: string,
    name: string,
    attempt: number,
    result: CompensationAttempt,
  ): CompensationUpdate {
    this.#hooks.compensationAttempted?.(name, result.ok ? 'compensated' : 'compensation_failed');
    if (result.ok) return { name, compensation: 'compensated', attempts: attempt };
    const {
      compensationMaxAttempts: max,
      compensationRetryBaseMs,
      compensationRetryMaxMs,
    } = this.#options;
    if (attempt >= max) {
      this.#log.error(
        { orderId, step: name, attempts: attempt, kind: result.kind, reason: result.message },
        'compensation failed for good: operator action needed',
      );
      this.#hooks.operatorFlagged?.(orderId, name);
      return {
        name,
        compensation: 'compensation_failed',
        attempts: attempt,
        error: result.kind,
        needsOperator: true,
      };
    }
    const delay = retryDelayMs(
      attempt,
      compensationRetryBaseMs,
      compensationRetryMaxMs,
      this.#random,
    );
    this.#log.warn(
      { orderId, step: name, attempt, kind: result.kind, retryInMs: delay },
      'compensation failed; will retry',
    );
    return {
      name,
      compensation: 'compensation_failed',
      attempts: attempt,
      error: result.kind,
      nextAttemptAt: this.#now() + delay,
    };
  }

  /**
   * start runs a first sweep — recovering the orders of dead instances, every running order
   * for an unshared store — and schedules the next ones. Rejects if that first sweep fails.
   */
  async start(): Promise<void> {
    await this.sweep();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.sweep().then(
        () => {
          this.#schedule();
        },
        (error: unknown) => {
          this.#log.error({ err: error }, 'order ledger sweep failed');
          this.#schedule();
        },
      );
    }, this.#options.sweepIntervalMs);
    this.#timer.unref();
  }

  /**
   * sweep renews this instance's leases, recovers orphaned orders and runs the
   * compensations that are due. Concurrent calls share one sweep. Rejects with the store's
   * error; whatever was recorded before stays recorded.
   */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweepOnce().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweepOnce(): Promise<void> {
    const now = this.#now();
    const leaseUntil = now + this.#options.leaseMs;
    if (this.#running.size > 0) {
      await this.#store.renewLeases(this.instanceId, [...this.#running.keys()], leaseUntil, now);
    }
    // An unshared store belongs to this process alone: whatever runs there at start-up was
    // left by a process that died, whatever its lease says.
    const anyOwner = this.#firstSweep && !this.#store.shared;
    this.#firstSweep = false;
    const orphans = await this.#store.claimOrphans(this.instanceId, now, leaseUntil, { anyOwner });
    for (const orphan of orphans) await this.#recover(orphan);
    // Claimed for twice a compensation's deadline: long enough to finish the attempt before
    // another instance may take it.
    const due = await this.#store.claimDueCompensations(
      now,
      now + 2 * this.#options.compensationTimeoutMs,
      50,
    );
    await this.#retryCompensations(due);
  }

  /**
   * recover records an order left running by a dead instance as failed with kind
   * `interrupted`: every step that completed or whose outcome is unknown gets a `pending`
   * compensation due now, and the compensation sweep that follows runs them. Recording
   * first means a second crash cannot lose them.
   */
  async #recover(orphan: StoredOrder): Promise<void> {
    const now = this.#now();
    const compensations: CompensationUpdate[] = orphan.steps
      .filter((step) => needsCompensation(step.status))
      .map((step) => ({
        name: step.name,
        compensation: 'pending',
        attempts: 0,
        nextAttemptAt: now,
      }));
    const pending = new Set(compensations.map((c) => c.name));
    const outcome: RecordedOutcome = {
      status: 'error',
      steps: orphan.steps.map((step) => ({
        name: step.name,
        status: step.status === 'running' ? 'interrupted' : step.status,
        durationMs: step.durationMs ?? 0,
        ...(step.detail === undefined ? {} : { detail: step.detail }),
        compensation: pending.has(step.name) ? 'pending' : 'not_needed',
      })),
      error: { kind: 'interrupted', message: kindMessage('interrupted') },
    };
    const finished = await this.#store.finish({
      orderId: orphan.orderId,
      owner: this.instanceId,
      errorKind: 'interrupted',
      outcome,
      steps: [],
      compensations,
      now,
    });
    if (!finished) return;
    this.#log.warn(
      { orderId: orphan.orderId, compensating: [...pending] },
      'recovered an order interrupted by a dead instance',
    );
    this.#hooks.orderRecovered?.(orphan.orderId);
  }

  /** retryCompensations runs claimed compensations, per order in reverse step order. */
  async #retryCompensations(due: readonly DueCompensation[]): Promise<void> {
    const byOrder = new Map<string, DueCompensation[]>();
    for (const item of due) {
      const list = byOrder.get(item.orderId) ?? [];
      list.push(item);
      byOrder.set(item.orderId, list);
    }
    await Promise.all(
      [...byOrder.values()].map(async (items) => {
        const first = items[0] as DueCompensation;
        let order: Order;
        try {
          order = this.#toOrder(first.request);
        } catch (error) {
          this.#log.error({ err: error, orderId: first.orderId }, 'recorded request is unreadable');
          return;
        }
        const positions = new Map(this.#steps.map((step, i) => [step.name, i]));
        items.sort((a, b) => (positions.get(b.name) ?? 0) - (positions.get(a.name) ?? 0));
        for (const item of items) {
          const step = this.#steps.find((candidate) => candidate.name === item.name);
          const attempt = item.attempts + 1;
          const result: CompensationAttempt =
            step === undefined
              ? { ok: false, kind: 'internal', message: `no step named ${item.name}` }
              : await compensateStep(step, order, attempt, this.#options.compensationTimeoutMs);
          const update = this.#afterAttempt(item.orderId, item.name, attempt, result);
          await this.#store.recordCompensation(item.orderId, update, this.#now());
        }
      }),
    );
  }

  /**
   * close stops the sweep and resolves once the sweep and every execution in flight have
   * settled, then closes the store if the ledger owns it. Executions are not aborted here:
   * the server drains or aborts them first.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await Promise.allSettled([this.#sweeping, ...[...this.#running.values()].map((r) => r.result)]);
    if (this.#ownsStore) await this.#store.close();
  }
}

/**
 * requestHash is the SHA-256 (hex) of the request's canonical JSON (object keys sorted), so
 * the same body with its fields in another order is the same request. Recorded in durable
 * stores: its definition must not change, or bodies recorded before would no longer match.
 */
export function requestHash(request: unknown): string {
  return digest('sha256', canonicalJson(request), 'hex');
}

/**
 * canonicalJson is `JSON.stringify` of `value` with every object's keys in code-unit order
 * and undefined members left out.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    let json = '[';
    for (let i = 0; i < value.length; i++) {
      // An undefined item joins as nothing, as Array.prototype.join makes it.
      json += (i === 0 ? '' : ',') + ((canonicalJson(value[i]) as string | undefined) ?? '');
    }
    return json + ']';
  }
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    // The default sort compares UTF-16 code units, as the `<` comparison did before.
    const keys = Object.keys(record).sort();
    let json = '{';
    for (const key of keys) {
      const item = record[key];
      if (item === undefined) continue;
      json += (json.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + canonicalJson(item);
    }
    return json + '}';
  }
  return JSON.stringify(value);
}

function recordOutcome(
  outcome: OrderOutcome,
  compensations: readonly CompensationUpdate[],
): RecordedOutcome {
  const failed = outcome.status === 'error';
  const byName = new Map(compensations.map((c) => [c.name, c.compensation]));
  return {
    status: outcome.status,
    steps: outcome.steps.map((step) => ({
      name: step.name,
      status: step.status,
      durationMs: step.durationMs,
      ...(step.detail === undefined ? {} : { detail: step.detail }),
      ...(failed ? { compensation: byName.get(step.name) ?? 'not_needed' } : {}),
    })),
    ...(outcome.error === undefined ? {} : { error: outcome.error }),
  };
}

function toStepUpdate(result: StepResult): {
  name: string;
  status: StepResult['status'];
  detail?: string;
  durationMs: number;
} {
  return {
    name: result.name,
    status: result.status,
    durationMs: result.durationMs,
    ...(result.detail === undefined ? {} : { detail: result.detail }),
  };
}

function hasOpenCompensation(order: StoredOrder): boolean {
  return order.steps.some(
    (step) =>
      !step.needsOperator &&
      (step.compensation === 'pending' || step.compensation === 'compensation_failed'),
  );
}

function asReplayed(result: SubmitResult): SubmitResult {
  return result.kind === 'outcome' ? { ...result, replayed: true } : result;
}

function noop(): void {
  // Logging disabled.
}
