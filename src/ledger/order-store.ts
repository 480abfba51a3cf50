/**
 * The durable record of orders, as the ledger needs it: one contract, implemented in
 * src/store/ by the embedded SQLite store (the default), the PostgreSQL store (several
 * instances) and the memory store (tests, benchmarks). All three pass one contract suite
 * (test/store/order-store-contract.ts).
 *
 * One execution of an order is a *run*: every `POST /order` that runs makes one, keyed by a
 * run id the ledger draws. A run records what the order was, who runs it, the outcome as it
 * was answered, and where the undoing of each of its steps stands. Times are epoch
 * milliseconds passed in by the caller, so the caller's clock (and a test's fake clock)
 * decides what is due and which lease has expired. The rules every store applies to what it
 * records are beside this contract: compensation-rules.ts and restart-rule.ts.
 */
import type { ErrorKind } from '../order/errors.js';
import type { Order } from '../order/order.js';
import type { StepStatus } from '../order/pipeline.js';

/**
 * RecordedStepStatus is how a step ended as recorded: a pipeline {@link StepStatus}, or
 * `interrupted` for a step cut off by the death of the process that ran it.
 */
export type RecordedStepStatus = StepStatus | 'interrupted';

/** Every {@link RecordedStepStatus}. */
export const recordedStepStatuses: readonly RecordedStepStatus[] = [
  'ok',
  'error',
  'canceled',
  'abandoned',
  'interrupted',
];

/**
 * CompensationStatus is where the undoing of one step of a failed order stands:
 * `not_needed` (the step left no effect), `pending` (to be compensated, not tried yet),
 * `compensated`, `compensation_failed` (the last attempt failed: retried until the attempt
 * limit, then flagged for an operator), `settled_by_operator` (an operator settled a flag).
 */
export const compensationStatuses = [
  'not_needed',
  'pending',
  'compensated',
  'compensation_failed',
  'settled_by_operator',
] as const;
export type CompensationStatus = (typeof compensationStatuses)[number];

/** RecordedStep is one step of an outcome, as answered and as replayed. */
export interface RecordedStep {
  readonly name: string;
  readonly status: RecordedStepStatus;
  /** Milliseconds from the start of the order until the step settled. */
  readonly durationMs: number;
  /** For a failed step, the kind of its failure. */
  readonly detail?: ErrorKind | undefined;
  /** For a failed order, where the undoing of this step stood when the order was answered. */
  readonly compensation?: CompensationStatus | undefined;
}

/** RecordedOutcome is an order's outcome as answered, and as replayed to a repeated request. */
export interface RecordedOutcome {
  readonly status: 'ok' | 'error';
  readonly steps: readonly RecordedStep[];
  readonly error?: { readonly kind: ErrorKind; readonly message: string } | undefined;
}

/** Compensation is the live state of the undoing of one step of a failed order. */
export interface Compensation {
  readonly name: string;
  readonly status: CompensationStatus;
  /** Attempts made so far. */
  readonly attempts: number;
  /** When the next attempt is due; set while `pending` or `compensation_failed`. */
  readonly nextAttemptAt?: number | undefined;
  /** What the last failed attempt said, safe to show an operator (see `CompensationAttempt`). */
  readonly lastError?: string | undefined;
  /** The attempt limit was reached: an operator must settle this step by hand. */
  readonly needsOperator: boolean;
}

/** RunState: `running` while an instance owns the run, `finished` once its outcome is recorded. */
export const runStates = ['running', 'finished'] as const;
export type RunState = (typeof runStates)[number];

/** OrderRun is one execution of an order, as recorded. */
export interface OrderRun {
  readonly runId: string;
  readonly orderId: string;
  /** The client's `Idempotency-Key`; absent for an order sent without one. */
  readonly idempotencyKey?: string | undefined;
  /** Fingerprint of the request (keyed runs): a repeated key must come with the same one. */
  readonly fingerprint?: string | undefined;
  readonly order: Order;
  readonly state: RunState;
  /** Executions of this key so far: 1, more only after a retryable outcome. */
  readonly attempt: number;
  /** Instance that runs the order (while `running`). */
  readonly owner?: string | undefined;
  /** The owner's lease: past it, another instance may recover the run. */
  readonly leaseUntil?: number | undefined;
  /** The outcome as answered; set once `finished`. */
  readonly outcome?: RecordedOutcome | undefined;
  /** The live state of each compensation of a failed order, in registration order. */
  readonly compensations: readonly Compensation[];
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly finishedAt?: number | undefined;
}

/** NewRun is a run about to start, as {@link OrderStore.begin} records it. */
export interface NewRun {
  readonly runId: string;
  readonly orderId: string;
  readonly idempotencyKey?: string | undefined;
  readonly fingerprint?: string | undefined;
  readonly order: Order;
  readonly owner: string;
  readonly leaseUntil: number;
  readonly now: number;
}

/**
 * BeginResult: `created` — the run is recorded and this caller owns it; otherwise the run
 * already recorded under the same idempotency key (only keyed runs can collide).
 */
export type BeginResult =
  { readonly created: true } | { readonly created: false; readonly existing: OrderRun };

export interface FinishInput {
  readonly runId: string;
  /** Only the owner may finish: a stale owner whose lease was taken over is fenced off. */
  readonly owner: string;
  readonly outcome: RecordedOutcome;
  /** Compensations of a failed order (empty for a successful one). */
  readonly compensations: readonly Compensation[];
  readonly now: number;
}

/** RecoverOrphansInput is what {@link OrderStore.recoverOrphans} takes and records. */
export interface RecoverOrphansInput {
  /** The recovering instance: with `anyOwner`, its own runs are left alone. */
  readonly owner: string;
  readonly now: number;
  /** Take every running run of another owner, whatever its lease (an unshared store's start). */
  readonly anyOwner: boolean;
  /** The most runs to take. */
  readonly limit: number;
  /** The outcome recorded for every run taken. */
  readonly outcome: RecordedOutcome;
  /** The compensations recorded for every run taken. */
  readonly compensations: readonly Compensation[];
}

/**
 * OrderStore records runs durably. A method resolves once its write is committed (the
 * store may commit the writes of many calls together), or rejects with the store's error,
 * leaving the record as it was: each call is atomic.
 */
export interface OrderStore {
  /**
   * shared is true when other processes may use the same store (PostgreSQL): a run owned
   * elsewhere is then only recovered once its lease has expired. An unshared store belongs
   * to one process, so at start-up every running run is an orphan.
   */
  readonly shared: boolean;

  /**
   * backlogMs estimates how long a write issued now waits before it is committed: 0 for a
   * store that keeps up. Admission refuses orders that could not be recorded in time.
   */
  backlogMs(): number;

  /**
   * begin records a new running run. With an idempotency key it inserts only if no run holds
   * that key, atomically: of any number of concurrent calls with one key exactly one gets
   * `created: true`; the others get the run that holds the key, whatever its state.
   */
  begin(run: NewRun): Promise<BeginResult>;

  /**
   * restart starts a new run for a key whose run is finished with a retryable outcome
   * (`retryable` lists the error kinds), with the same fingerprint and no compensation still
   * open (`pending` or `compensation_failed`): the key moves to the new run, whose attempt is
   * one more. Atomic like {@link begin}: one of concurrent callers wins. Resolves true if it
   * did, false otherwise (nothing changed).
   */
  restart(
    run: NewRun & { readonly idempotencyKey: string },
    retryable: readonly ErrorKind[],
  ): Promise<boolean>;

  /**
   * finish records the outcome and compensations and marks the run `finished`, if `owner`
   * still owns it while running. Resolves true if it did, false if the run was taken over or
   * finished meanwhile (nothing changed).
   */
  finish(input: FinishInput): Promise<boolean>;

  /** recordCompensations replaces the compensations of a finished run. */
  recordCompensations(
    runId: string,
    compensations: readonly Compensation[],
    now: number,
  ): Promise<void>;

  /** get resolves with the most recent run of `orderId`, or undefined if there is none. */
  get(orderId: string): Promise<OrderRun | undefined>;

  /** getRun resolves with the run `runId`, or undefined if there is none. */
  getRun(runId: string): Promise<OrderRun | undefined>;

  /** getByKey resolves with the run that holds idempotency key `key`, or undefined. */
  getByKey(key: string): Promise<OrderRun | undefined>;

  /**
   * renewLeases extends to `leaseUntil` the lease of each of `runIds` that is running and
   * owned by `owner`. Only runs the owner is still executing are named, so a run whose
   * execution broke off (a store error) is left to expire and be recovered.
   */
  renewLeases(
    owner: string,
    runIds: readonly string[],
    leaseUntil: number,
    now: number,
  ): Promise<void>;

  /**
   * recoverOrphans records as finished, in one atomic write, running runs whose owner is gone
   * or whose execution broke off: those whose lease expired before `now` (whoever owns them:
   * an owner renews the leases of the runs it still executes), or, with `anyOwner`, every
   * running run not owned by `owner`. Each run taken gets `outcome` and `compensations`, and
   * `now` as its finish time, exactly as {@link finish} would record them. Takes the oldest
   * first, at most `limit`; of concurrent callers, in this process or another sharing the
   * store, each run goes to one only. Resolves with the runs taken, as recorded.
   */
  recoverOrphans(input: RecoverOrphansInput): Promise<OrderRun[]>;

  /**
   * claimDueCompensations takes finished runs with a compensation due (`pending` or
   * `compensation_failed`, not flagged, next attempt at or before `now`) and pushes those
   * attempts to `claimUntil`, atomically, so that another instance does not run them at the
   * same time. Resolves with at most `limit` runs, as they were before the claim.
   */
  claimDueCompensations(now: number, claimUntil: number, limit: number): Promise<OrderRun[]>;

  /**
   * openCompensations lists finished runs with a compensation still open or flagged for an
   * operator, oldest first, at most `limit`: what an operator watches.
   */
  openCompensations(limit: number): Promise<OrderRun[]>;

  /**
   * settleFlag records that an operator settled the flagged compensation `step` of run
   * `runId`: it becomes `settled_by_operator`. Resolves false if there is no such flag.
   */
  settleFlag(runId: string, step: string, now: number): Promise<boolean>;

  /** close commits what is pending and releases the store; it is unusable afterwards. */
  close(): Promise<void>;
}
