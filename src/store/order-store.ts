/**
 * The durable record of orders: one interface, implemented by an in-memory store (tests),
 * an embedded PGlite store (the default) and a PostgreSQL store (several instances). All
 * three pass the same contract suite (test/store/contract.ts).
 *
 * Times are epoch milliseconds passed in by the caller, so the caller's clock (and a test's
 * fake clock) decides what is due and which lease has expired.
 */

/** What one step of an order is known to have done. `running`: started, no outcome recorded. */
export type StoredStepStatus = 'running' | 'ok' | 'error' | 'canceled' | 'abandoned';

/**
 * CompensationStatus is where the undoing of one step stands: `not_needed` (the step left no
 * effect), `pending` (to be compensated, not tried yet), `compensated`, `compensation_failed`
 * (the last attempt failed; retried until the attempt limit, then flagged for an operator).
 */
export type CompensationStatus = 'not_needed' | 'pending' | 'compensated' | 'compensation_failed';

/** OrderState: `running` while an instance owns the order, `finished` once its outcome is recorded. */
export type OrderState = 'running' | 'finished';

export interface StoredStep {
  readonly name: string;
  readonly status: StoredStepStatus;
  /** For a failed step, the kind of its failure. */
  readonly detail?: string | undefined;
  /** Milliseconds from the start of the order until the step settled. */
  readonly durationMs?: number | undefined;
  readonly compensation: CompensationStatus;
  /** Compensation attempts made so far. */
  readonly compensationAttempts: number;
  /** When the next compensation attempt is due; set while `pending` or `compensation_failed`. */
  readonly nextCompensationAt?: number | undefined;
  /** Kind of the last failed compensation attempt. */
  readonly compensationError?: string | undefined;
  /** The attempt limit was reached: an operator must settle this step by hand. */
  readonly needsOperator: boolean;
  readonly updatedAt: number;
}

export interface StoredOrder {
  readonly orderId: string;
  /** Hash of the canonical request body: the idempotency check. */
  readonly requestHash: string;
  /** The request body as received (validated JSON). */
  readonly request: unknown;
  readonly state: OrderState;
  /** Executions of this order so far: 1, more only after a retryable outcome. */
  readonly attempt: number;
  /** Instance that runs the order (while `running`). */
  readonly owner?: string | undefined;
  /** The owner's lease: past it, another instance may recover the order. */
  readonly leaseUntil?: number | undefined;
  /** Kind of the recorded failure; undefined while running and for a successful order. */
  readonly errorKind?: string | undefined;
  /** The outcome as answered to the client, replayed verbatim to duplicates. */
  readonly outcome?: unknown;
  /** Steps in registration order. */
  readonly steps: readonly StoredStep[];
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly finishedAt?: number | undefined;
}

export interface BeginInput {
  readonly orderId: string;
  readonly requestHash: string;
  readonly request: unknown;
  /** Step names in registration order; each starts as `running`, `not_needed`. */
  readonly stepNames: readonly string[];
  readonly owner: string;
  readonly now: number;
  readonly leaseUntil: number;
}

/** BeginResult: `created` — this caller owns a new order; `exists` — the recorded order. */
export type BeginResult =
  | { readonly created: true; readonly order: StoredOrder }
  | { readonly created: false; readonly order: StoredOrder };

export interface StepUpdate {
  readonly name: string;
  readonly status: StoredStepStatus;
  readonly detail?: string | undefined;
  readonly durationMs?: number | undefined;
}

export interface CompensationUpdate {
  readonly name: string;
  readonly compensation: CompensationStatus;
  readonly attempts: number;
  readonly nextAttemptAt?: number | undefined;
  readonly error?: string | undefined;
  readonly needsOperator?: boolean | undefined;
}

export interface FinishInput {
  readonly orderId: string;
  /** Only the owner may finish: a stale owner whose lease was taken over is fenced off. */
  readonly owner: string;
  readonly errorKind?: string | undefined;
  readonly outcome: unknown;
  /** Final step outcomes (all of them). */
  readonly steps: readonly StepUpdate[];
  /** Compensation state of every step that has one to record. */
  readonly compensations: readonly CompensationUpdate[];
  readonly now: number;
}

/** A step whose compensation is due, with the request it belongs to. */
export interface DueCompensation {
  readonly orderId: string;
  readonly request: unknown;
  readonly name: string;
  /** Attempts made before this one. */
  readonly attempts: number;
}

/**
 * OrderStore records orders durably. Every method either completes its write or rejects
 * with the store's error, leaving the record as it was (each method is one transaction).
 */
export interface OrderStore {
  /**
   * shared is true when other processes may use the same store (PostgreSQL): an order
   * running elsewhere is then only recovered once its lease has expired. An unshared
   * store (embedded) belongs to one process, so at start-up every running order is an orphan.
   */
  readonly shared: boolean;

  /**
   * begin inserts the order if no order with its id exists, atomically: of any number of
   * concurrent calls with one id, exactly one gets `created: true`. The others get the
   * recorded order, whatever its state.
   */
  begin(input: BeginInput): Promise<BeginResult>;

  /**
   * restart starts a new attempt of a finished order: only if it is `finished`, its hash
   * matches, and no compensation is `pending` or `compensation_failed`. Atomic like
   * {@link begin}: one of concurrent callers wins. Resolves with the order on success,
   * undefined otherwise (nothing changed).
   */
  restart(input: BeginInput): Promise<StoredOrder | undefined>;

  /** recordStep records one step's outcome of a running order owned by `owner`; else no-op. */
  recordStep(orderId: string, owner: string, step: StepUpdate, now: number): Promise<void>;

  /**
   * finish records the final outcome and compensation states and marks the order
   * `finished`, if `owner` still owns it while running. Resolves true if it did, false if the
   * order was taken over or finished meanwhile (nothing changed).
   */
  finish(input: FinishInput): Promise<boolean>;

  /** recordCompensation records one compensation attempt's result (any state of the order). */
  recordCompensation(orderId: string, update: CompensationUpdate, now: number): Promise<void>;

  /** get resolves with the recorded order, or undefined if there is none. */
  get(orderId: string): Promise<StoredOrder | undefined>;

  /**
   * renewLeases extends to `leaseUntil` the lease of each of `orderIds` that is running and
   * owned by `owner`. Only orders the owner is still executing are named, so an order whose
   * execution broke off (a store error) is left to expire and be recovered.
   */
  renewLeases(
    owner: string,
    orderIds: readonly string[],
    leaseUntil: number,
    now: number,
  ): Promise<void>;

  /**
   * claimOrphans takes over running orders whose owner is gone: those whose lease expired
   * before `now`, or, with `anyOwner`, every running order not owned by `owner`. Each claimed
   * order gets `owner` and `leaseUntil`, atomically, so two instances never claim the same
   * order. Resolves with the claimed orders.
   */
  claimOrphans(
    owner: string,
    now: number,
    leaseUntil: number,
    options?: { anyOwner?: boolean },
  ): Promise<StoredOrder[]>;

  /**
   * claimDueCompensations takes the compensations of finished orders that are due
   * (`pending` or `compensation_failed`, not flagged, next attempt at or before `now`), and
   * pushes their next attempt to `claimUntil`, atomically, so that another instance does not
   * run them at the same time. At most `limit` are claimed.
   */
  claimDueCompensations(now: number, claimUntil: number, limit: number): Promise<DueCompensation[]>;

  /** close releases the store's resources; the store is unusable afterwards. */
  close(): Promise<void>;
}
