import { randomUUID } from 'node:crypto';
import { newRunId } from './run-id.js';
import type { Cancellation } from '../core/cancellation.js';
import type { ErrorKind } from '../order/errors.js';
import type { Order } from '../order/order.js';
import { Compensator } from './compensator.js';
import { execute, type ExecutionContext } from './execution.js';
import {
  silentLogger,
  sweepIntervalFor,
  type LedgerLogger,
  type OrderLedgerOptions,
} from './ledger-options.js';
import { isClaimable, needsOperator } from './compensation-rules.js';
import type { NewRun, OrderRun, OrderStore } from './order-store.js';
import { Recovery } from './recovery.js';
import { asReplayed, type Submission } from './submission.js';

/**
 * Outcome kinds after which a request with the same idempotency key runs anew (once its
 * compensations are settled, see {@link keyHolderAnswer}): they say nothing about the order
 * itself. Every other outcome, success included, is final and replayed.
 */
export const retryableKinds: readonly ErrorKind[] = [
  'timeout',
  'canceled',
  'interrupted',
  'overloaded',
  'shutting_down',
  'unavailable',
];

/** SubmitOptions: how one submission is keyed and stopped. */
export interface SubmitOptions {
  /**
   * The client's `Idempotency-Key`: a repeat with the same key and fingerprint is answered
   * from the record; the same key with another fingerprint is `idempotency_conflict`.
   */
  readonly idempotencyKey?: string | undefined;
  /** Fingerprint of the request; required with a key. */
  readonly fingerprint?: string | undefined;
  /** Stops the order: the client leaving, the deadline, a shutdown. */
  readonly cancel: Cancellation;
}

/**
 * OrderLedger records every order durably and makes keyed submission exactly-once over an
 * {@link OrderStore}:
 *
 * - {@link submit} records a run before any step starts (one write), runs it, and records
 *   its outcome (one more write) before answering, so every answer but a forced timeout is
 *   durable. A failed order's compensations are recorded `pending` with its outcome and run
 *   right after, in the background (see {@link Compensator}).
 * - With an idempotency key a run executes at most once at a time: the store's
 *   insert-if-absent decides which caller executes; a repeat in this instance joins the
 *   running execution, one in another instance gets `order_in_progress`; a finished run is
 *   replayed, or runs anew after a retryable outcome once its compensations are settled; a
 *   run whose compensation waits for an operator is replayed with its flag, not waited for
 *   (see {@link keyHolderAnswer}).
 * - A background sweep renews this instance's leases, recovers the runs of dead instances
 *   as `interrupted` and retries due compensations (see {@link Recovery}).
 *
 * {@link start} runs a first sweep (recovery) and schedules the next; {@link close} stops
 * the sweep and waits for executions and compensations in flight.
 */
export class OrderLedger {
  readonly instanceId: string;
  readonly #store: OrderStore;
  readonly #ownsStore: boolean;
  readonly #stepNames: readonly string[];
  readonly #context: ExecutionContext;
  readonly #recovery: Recovery;
  readonly #sweepIntervalMs: number;
  readonly #leaseMs: number;
  readonly #now: () => number;
  readonly #log: LedgerLogger;
  /** Keyed executions running in this instance, by key: repeats join them. */
  readonly #byKey = new Map<
    string,
    { fingerprint: string | undefined; answer: Promise<Submission> }
  >();
  /** Runs executing in this instance: their leases are renewed. */
  readonly #executing = new Set<string>();
  /** Submissions not yet answered, awaited by {@link close}. */
  readonly #submissions = new Set<Promise<unknown>>();
  /** Work that outlives an answer or a sweep (compensations), awaited by {@link close}. */
  readonly #background = new Set<Promise<unknown>>();
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  #closed = false;

  constructor(options: OrderLedgerOptions) {
    this.#store = options.store;
    this.#ownsStore = options.ownsStore === true;
    this.#stepNames = options.pipeline.stepNames;
    this.instanceId = options.instanceId ?? randomUUID();
    this.#now = options.now ?? Date.now;
    this.#log = options.logger ?? silentLogger;
    const hooks = options.hooks ?? {};
    this.#leaseMs = options.leaseMs;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? sweepIntervalFor(options.leaseMs);
    const compensator = new Compensator({
      store: options.store,
      steps: options.steps,
      timeoutMs: options.compensationTimeoutMs,
      maxAttempts: options.compensationMaxAttempts,
      retryBaseMs: options.compensationRetryBaseMs,
      retryMaxMs: options.compensationRetryMaxMs,
      now: this.#now,
      random: options.random ?? Math.random,
      log: this.#log,
      hooks,
    });
    this.#context = {
      store: options.store,
      pipeline: options.pipeline,
      compensator,
      instanceId: this.instanceId,
      now: this.#now,
      log: this.#log,
      track: (work) => {
        keepUntilSettled(this.#background, work);
      },
    };
    this.#recovery = new Recovery({
      store: options.store,
      compensator,
      instanceId: this.instanceId,
      stepNames: this.#stepNames,
      leaseMs: options.leaseMs,
      now: this.#now,
      log: this.#log,
      hooks,
      executing: () => [...this.#executing],
      track: this.#context.track,
    });
  }

  /** store is the order store the ledger records to. */
  get store(): OrderStore {
    return this.#store;
  }

  /** retryAfterSeconds is what to tell a client whose order is still in progress elsewhere. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.#sweepIntervalMs / 1000));
  }

  /** openCompensations lists runs with a compensation open or flagged, oldest first. */
  openCompensations(limit: number): Promise<OrderRun[]> {
    return this.#store.openCompensations(limit);
  }

  /**
   * settleFlag records that an operator settled the flagged compensation `step` of run
   * `runId` (logged). Resolves false if there is no such flag.
   */
  async settleFlag(runId: string, step: string): Promise<boolean> {
    const settled = await this.#store.settleFlag(runId, step, this.#now());
    if (settled) this.#log.info({ run_id: runId, step }, 'an operator settled a compensation');
    return settled;
  }

  /** get resolves with the most recent run of `orderId`, or undefined. */
  get(orderId: string): Promise<OrderRun | undefined> {
    return this.#store.get(orderId);
  }

  /**
   * submit records and runs `order`, or answers for the run that did (see the class). The
   * answer resolves once the outcome it states is recorded; it rejects only if the store
   * fails (a run that had begun is then left for recovery).
   */
  submit(order: Order, options: SubmitOptions): Promise<Submission> {
    const key = options.idempotencyKey;
    if (key === undefined) return this.#begin(this.#newRun(order, options), options.cancel);
    const running = this.#byKey.get(key);
    if (running !== undefined) {
      if (running.fingerprint !== options.fingerprint) {
        return Promise.resolve('idempotency_conflict');
      }
      return running.answer.then(asReplayed);
    }
    // Registered synchronously, before any await: every later repeat in this instance finds
    // it and joins, so this instance never races itself in the store.
    const answer = this.#begin(this.#newRun(order, options), options.cancel);
    const entry = { fingerprint: options.fingerprint, answer };
    this.#byKey.set(key, entry);
    const forget = (): void => {
      if (this.#byKey.get(key) === entry) this.#byKey.delete(key);
    };
    answer.then(forget, forget);
    return answer;
  }

  #newRun(order: Order, options: SubmitOptions): NewRun {
    const now = this.#now();
    return {
      runId: newRunId(),
      orderId: order.id,
      idempotencyKey: options.idempotencyKey,
      fingerprint: options.fingerprint,
      order,
      owner: this.instanceId,
      leaseUntil: now + this.#leaseMs,
      now,
    };
  }

  async #beginOnce(run: NewRun, cancel: Cancellation): Promise<Submission> {
    const begun = await this.#store.begin(run);
    if (begun.created) return this.#execute(run, cancel);
    return this.#answerExisting(run, begun.existing, cancel);
  }

  /** answerExisting answers a keyed request whose key is already recorded. */
  async #answerExisting(
    run: NewRun,
    existing: OrderRun,
    cancel: Cancellation,
  ): Promise<Submission> {
    if (existing.fingerprint !== run.fingerprint) return 'idempotency_conflict';
    const answer = keyHolderAnswer(existing);
    if (answer !== 'may_restart') return answer;
    const keyed = { ...run, idempotencyKey: existing.idempotencyKey ?? '' };
    if (await this.#store.restart(keyed, retryableKinds)) return this.#execute(run, cancel);
    // Another request restarted it first (and it may have finished since): read it again.
    const current = await this.#store.getByKey(keyed.idempotencyKey);
    if (current === undefined) return 'order_in_progress';
    const again = keyHolderAnswer(current);
    return again === 'may_restart' ? replayOf(current) : again;
  }

  async #execute(run: NewRun, cancel: Cancellation): Promise<Submission> {
    this.#executing.add(run.runId);
    try {
      return await execute(this.#context, run, cancel);
    } finally {
      this.#executing.delete(run.runId);
    }
  }

  /** begin records `run` and runs it, or answers from the run that holds its key. */
  #begin(run: NewRun, cancel: Cancellation): Promise<Submission> {
    const answer = this.#beginOnce(run, cancel);
    keepUntilSettled(this.#submissions, answer);
    return answer;
  }

  /**
   * start runs a first sweep — recovering the runs of dead instances, every running run for
   * an unshared store — and schedules the next ones. Rejects if that first sweep fails.
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
    }, this.#sweepIntervalMs);
    this.#timer.unref();
  }

  /**
   * sweep renews this instance's leases, recovers orphaned runs and runs the compensations
   * that are due (see {@link Recovery.sweep}). Concurrent calls share one sweep.
   */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#recovery.sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  /**
   * idle resolves once no compensation started after an answer or by a recovery is still
   * running (at once if none is); compensations that start meanwhile are waited for too.
   */
  async idle(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  /**
   * close stops the sweep and resolves once the sweep, every execution and every
   * compensation in flight have settled, then closes the store if the ledger owns it.
   * Executions are not aborted here: the service drains or aborts them first.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await Promise.allSettled([this.#sweeping, ...this.#submissions]);
    await this.idle();
    if (this.#ownsStore) await this.#store.close();
  }
}

/**
 * keyHolderAnswer is the answer to a repeat of the keyed request whose run is `holder`, or
 * `may_restart` if the key may run anew:
 *
 * - running: `order_in_progress`;
 * - finished with a final outcome: replayed;
 * - finished with a retryable outcome, a compensation still left to the retries:
 *   `order_in_progress` (it settles by itself, the client retries after Retry-After);
 * - finished with a retryable outcome, no compensation left to the retries but one flagged
 *   for an operator: replayed, flag shown. It is not in progress: nothing happens to it until
 *   an operator acts, so answering 409 would send the client back for ever;
 * - finished with a retryable outcome, every compensation done or settled: `may_restart`.
 *
 * A replay carries `needsOperator` whenever a compensation of the run is flagged.
 */
function keyHolderAnswer(holder: OrderRun): Submission | 'may_restart' {
  if (holder.state === 'running' || holder.outcome === undefined) return 'order_in_progress';
  const kind = holder.outcome.error?.kind;
  if (kind === undefined || !retryableKinds.includes(kind)) return replayOf(holder);
  if (holder.compensations.some(isClaimable)) return 'order_in_progress';
  if (needsOperator(holder.compensations)) return replayOf(holder);
  return 'may_restart';
}

/** replayOf is the recorded answer of the finished run `run`, with its flag if it has one. */
function replayOf(run: OrderRun): Submission {
  if (run.outcome === undefined) return 'order_in_progress';
  return needsOperator(run.compensations)
    ? { outcome: run.outcome, replayed: true, needsOperator: true }
    : { outcome: run.outcome, replayed: true };
}

/** keepUntilSettled holds `work` in `set` until it settles, whichever way. */
function keepUntilSettled(set: Set<Promise<unknown>>, work: Promise<unknown>): void {
  set.add(work);
  const forget = (): void => {
    set.delete(work);
  };
  work.then(forget, forget);
}
