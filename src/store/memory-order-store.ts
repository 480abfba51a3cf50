import type { ErrorKind } from '../order/errors.js';
import {
  claimDue,
  isAttention,
  nextCompensationAt,
  settledFlag,
} from '../ledger/compensation-rules.js';
import type {
  BeginResult,
  Compensation,
  FinishInput,
  NewRun,
  OrderRun,
  OrderStore,
  RecoverOrphansInput,
} from '../ledger/order-store.js';
import { mayRestart } from '../ledger/restart-rule.js';

/** How many settled runs a {@link MemoryOrderStore} keeps by default. */
export const defaultMaxSettledRuns = 10_000;

export interface MemoryOrderStoreOptions {
  /**
   * The most finished runs with no compensation left open that the store keeps; past it the
   * one settled longest ago is forgotten. A positive integer, or Infinity to keep them all.
   */
  readonly maxSettledRuns?: number;
}

/**
 * MemoryOrderStore keeps runs in maps: the same contract as the durable stores, nothing
 * durable. For tests, benchmarks and library users who need no record. Every method
 * completes synchronously before its promise settles, so concurrent calls are atomic, and
 * {@link backlogMs} is always 0.
 *
 * Runs are immutable values: a write replaces the run with an updated copy, and what a
 * caller passes in or gets back is never changed afterwards (callers must not change it
 * either; the types say so).
 *
 * Retention is bounded: beyond `maxSettledRuns` finished runs with no compensation open,
 * the one settled longest ago is forgotten, and with it the idempotency of its key (a
 * resubmission runs anew). Running runs and runs with a compensation open or flagged are
 * never forgotten. Orphan, due-compensation and open-compensation lookups visit only the
 * runs that can match, so their cost does not grow with history.
 *
 * The constructor throws a RangeError if `maxSettledRuns` is not a positive integer or
 * Infinity.
 */
export class MemoryOrderStore implements OrderStore {
  readonly shared = false;
  readonly #maxSettledRuns: number;
  readonly #runs = new Map<string, OrderRun>();
  readonly #latestByOrder = new Map<string, string>();
  readonly #byKey = new Map<string, string>();
  /** Runs in `running` state: the only candidates of {@link recoverOrphans}. */
  readonly #running = new Set<string>();
  /** Finished runs with a compensation open or flagged, in the order they became so. */
  readonly #open = new Set<string>();
  /**
   * Settled runs in the order they settled: the ones that may be forgotten, oldest first.
   * A run that settles again after being reopened leaves a stale entry, told apart by its
   * ticket and skipped. (A Set would do, but taking its oldest entry again and again walks
   * over every entry deleted before it.)
   */
  readonly #settledQueue: { readonly runId: string; readonly ticket: number }[] = [];
  readonly #tickets = new Map<string, number>();
  #settledHead = 0;
  #ticketCount = 0;

  constructor(options: MemoryOrderStoreOptions = {}) {
    const max = options.maxSettledRuns ?? defaultMaxSettledRuns;
    if (max !== Infinity && (!Number.isInteger(max) || max < 1)) {
      throw new RangeError(
        `maxSettledRuns must be a positive integer or Infinity, got ${String(max)}`,
      );
    }
    this.#maxSettledRuns = max;
  }

  /** size is the number of runs kept, in any state. */
  get size(): number {
    return this.#runs.size;
  }

  backlogMs(): number {
    return 0;
  }

  begin(run: NewRun): Promise<BeginResult> {
    const key = run.idempotencyKey;
    if (key !== undefined) {
      const holder = this.#runs.get(this.#byKey.get(key) ?? '');
      if (holder !== undefined) return Promise.resolve({ created: false, existing: holder });
    }
    this.#insert(run, 1);
    return Promise.resolve({ created: true });
  }

  restart(
    run: NewRun & { readonly idempotencyKey: string },
    retryable: readonly ErrorKind[],
  ): Promise<boolean> {
    const holder = this.#runs.get(this.#byKey.get(run.idempotencyKey) ?? '');
    if (holder === undefined || !mayRestart(holder, run.fingerprint, retryable)) {
      return Promise.resolve(false);
    }
    this.#replace({ ...holder, idempotencyKey: undefined });
    this.#insert(run, holder.attempt + 1);
    return Promise.resolve(true);
  }

  finish(input: FinishInput): Promise<boolean> {
    const run = this.#runs.get(input.runId);
    if (run?.state !== 'running' || run.owner !== input.owner) return Promise.resolve(false);
    this.#replace(finished(run, input));
    return Promise.resolve(true);
  }

  recordCompensations(
    runId: string,
    compensations: readonly Compensation[],
    now: number,
  ): Promise<void> {
    const run = this.#runs.get(runId);
    if (run?.state === 'finished') this.#replace({ ...run, compensations, updatedAt: now });
    return Promise.resolve();
  }

  get(orderId: string): Promise<OrderRun | undefined> {
    return Promise.resolve(this.#runs.get(this.#latestByOrder.get(orderId) ?? ''));
  }

  getRun(runId: string): Promise<OrderRun | undefined> {
    return Promise.resolve(this.#runs.get(runId));
  }

  getByKey(key: string): Promise<OrderRun | undefined> {
    return Promise.resolve(this.#runs.get(this.#byKey.get(key) ?? ''));
  }

  renewLeases(
    owner: string,
    runIds: readonly string[],
    leaseUntil: number,
    now: number,
  ): Promise<void> {
    for (const runId of runIds) {
      const run = this.#runs.get(runId);
      if (run?.state === 'running' && run.owner === owner) {
        this.#replace({ ...run, leaseUntil, updatedAt: now });
      }
    }
    return Promise.resolve();
  }

  recoverOrphans(input: RecoverOrphansInput): Promise<OrderRun[]> {
    const orphans: OrderRun[] = [];
    for (const runId of this.#running) {
      if (orphans.length >= input.limit) break;
      const run = this.#runs.get(runId);
      if (run === undefined) continue;
      const expired = run.leaseUntil === undefined || run.leaseUntil < input.now;
      if (expired || (input.anyOwner && run.owner !== input.owner)) orphans.push(run);
    }
    // Recorded after the walk: recording takes a run out of the set being walked.
    return Promise.resolve(
      orphans.map((run) => {
        const recovered = finished(run, input);
        this.#replace(recovered);
        return recovered;
      }),
    );
  }

  claimDueCompensations(now: number, claimUntil: number, limit: number): Promise<OrderRun[]> {
    const due: { run: OrderRun; at: number }[] = [];
    for (const runId of this.#open) {
      const run = this.#runs.get(runId);
      const at = run === undefined ? undefined : nextCompensationAt(run.compensations);
      if (run !== undefined && at !== undefined && at <= now) due.push({ run, at });
    }
    due.sort((a, b) => a.at - b.at);
    return Promise.resolve(
      due.slice(0, limit).map(({ run }) => {
        const compensations = claimDue(run.compensations, now, claimUntil);
        if (compensations !== undefined) this.#replace({ ...run, compensations });
        return run;
      }),
    );
  }

  openCompensations(limit: number): Promise<OrderRun[]> {
    const open: OrderRun[] = [];
    for (const runId of this.#open) {
      if (open.length >= limit) break;
      const run = this.#runs.get(runId);
      if (run !== undefined) open.push(run);
    }
    return Promise.resolve(open);
  }

  settleFlag(runId: string, step: string, now: number): Promise<boolean> {
    const run = this.#runs.get(runId);
    const compensations = run === undefined ? undefined : settledFlag(run.compensations, step);
    if (run === undefined || compensations === undefined) return Promise.resolve(false);
    this.#replace({ ...run, compensations, updatedAt: now });
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #insert(run: NewRun, attempt: number): void {
    const recorded: OrderRun = {
      runId: run.runId,
      orderId: run.orderId,
      idempotencyKey: run.idempotencyKey,
      fingerprint: run.fingerprint,
      order: run.order,
      state: 'running',
      attempt,
      owner: run.owner,
      leaseUntil: run.leaseUntil,
      outcome: undefined,
      compensations: [],
      createdAt: run.now,
      updatedAt: run.now,
      finishedAt: undefined,
    };
    this.#latestByOrder.set(run.orderId, run.runId);
    if (run.idempotencyKey !== undefined) this.#byKey.set(run.idempotencyKey, run.runId);
    this.#replace(recorded);
  }

  /**
   * replace stores `run` in place of the run with its id and files it under the lookups its
   * state calls for, forgetting the oldest settled runs beyond the cap.
   */
  #replace(run: OrderRun): void {
    const { runId } = run;
    this.#runs.set(runId, run);
    if (run.state === 'running') {
      this.#running.add(runId);
      this.#open.delete(runId);
      this.#tickets.delete(runId);
      return;
    }
    this.#running.delete(runId);
    if (isAttention(run.compensations)) {
      this.#open.add(runId);
      this.#tickets.delete(runId);
      return;
    }
    this.#open.delete(runId);
    if (!this.#tickets.has(runId)) this.#settle(runId);
  }

  #settle(runId: string): void {
    const ticket = ++this.#ticketCount;
    this.#tickets.set(runId, ticket);
    this.#settledQueue.push({ runId, ticket });
    while (this.#tickets.size > this.#maxSettledRuns) {
      const oldest = this.#settledQueue[this.#settledHead++];
      if (oldest === undefined) break;
      if (this.#tickets.get(oldest.runId) !== oldest.ticket) continue;
      this.#forget(oldest.runId);
    }
    // Drop the consumed head once it is most of the array: amortized O(1) per run.
    if (this.#settledHead > 1024 && this.#settledHead * 2 > this.#settledQueue.length) {
      this.#settledQueue.splice(0, this.#settledHead);
      this.#settledHead = 0;
    }
  }

  #forget(runId: string): void {
    const run = this.#runs.get(runId);
    this.#tickets.delete(runId);
    this.#runs.delete(runId);
    if (run === undefined) return;
    if (this.#latestByOrder.get(run.orderId) === runId) this.#latestByOrder.delete(run.orderId);
    const key = run.idempotencyKey;
    if (key !== undefined && this.#byKey.get(key) === runId) this.#byKey.delete(key);
  }
}

/** finished is `run` recorded finished with the outcome and compensations of `input`. */
function finished(
  run: OrderRun,
  input: Pick<FinishInput, 'outcome' | 'compensations' | 'now'>,
): OrderRun {
  return {
    ...run,
    state: 'finished',
    owner: undefined,
    leaseUntil: undefined,
    outcome: input.outcome,
    compensations: input.compensations,
    updatedAt: input.now,
    finishedAt: input.now,
  };
}
