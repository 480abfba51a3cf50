import { Semaphore } from '../core/semaphore.js';
import { kindMessage } from '../order/errors.js';
import type { Compensator } from './compensator.js';
import type { LedgerHooks, LedgerLogger } from './ledger-options.js';
import type { OrderRun, OrderStore, RecordedOutcome, RecoverOrphansInput } from './order-store.js';

export interface RecoveryOptions {
  readonly store: OrderStore;
  readonly compensator: Compensator;
  readonly instanceId: string;
  /** The pipeline's step names, in registration order. */
  readonly stepNames: readonly string[];
  readonly leaseMs: number;
  readonly now: () => number;
  readonly log: LedgerLogger;
  readonly hooks: LedgerHooks;
  /** The runs this instance executes now: their leases are renewed. */
  readonly executing: () => readonly string[];
  /** Keeps work that outlives a sweep (the compensations it starts) until the ledger closes. */
  readonly track: (work: Promise<unknown>) => void;
}

/** How many orphans one store write records `interrupted`. */
const recoveryBatch = 500;

/** How many runs with due compensations one sweep takes on. */
const dueBatch = 100;

/**
 * How many recovered runs are compensated at once. A crash under load leaves hundreds or
 * thousands of orders to undo together, and each compensation calls the upstreams (refund,
 * retraction, release) and then writes to the store: one at a time takes the sum of their
 * durations (70 ms an order with the simulated steps), all at once floods the upstreams and
 * the store's connections right when an instance restarts. 32 undoes 1,000 orders of the
 * simulated steps in about 2 s.
 */
const recoveryConcurrency = 32;

/**
 * Recovery keeps the record true when processes die. Each {@link sweep} renews the leases of
 * the runs this instance executes, takes over the runs whose owner is gone (their lease
 * expired; at the first sweep of an unshared store, every running run, since the store
 * belongs to this process alone and whatever runs there was left by one that died) and
 * records them `interrupted`, up to {@link recoveryBatch} per store write, then runs the
 * compensations that are due. The compensations of the runs it recovers run beside the
 * sweeps, {@link recoveryConcurrency} at a time.
 */
export class Recovery {
  readonly #options: RecoveryOptions;
  readonly #compensating = new Semaphore(recoveryConcurrency);
  #firstSweep = true;

  constructor(options: RecoveryOptions) {
    this.#options = options;
  }

  /**
   * sweep does one round. Rejects with the store's error; whatever was recorded before the
   * error stays recorded, and the next sweep takes up the rest. The compensations of the
   * runs it recovers run on after it resolves (see {@link RecoveryOptions.track}).
   */
  async sweep(): Promise<void> {
    const { store, instanceId, leaseMs, compensator } = this.#options;
    const now = this.#options.now();
    const executing = this.#options.executing();
    if (executing.length > 0) await store.renewLeases(instanceId, executing, now + leaseMs, now);
    await this.#recoverOrphans(now);
    const due = await store.claimDueCompensations(now, now + compensator.claimWindowMs, dueBatch);
    await Promise.all(due.map((run) => compensator.compensate(run, now)));
  }

  /**
   * recoverOrphans records every orphan failed as {@link interruptedRecord} says, a batch per
   * store write. Recording first means a second crash cannot lose the compensations; they
   * start as each batch is recorded, without holding up the next batch.
   */
  async #recoverOrphans(now: number): Promise<void> {
    const { store, compensator, instanceId, stepNames } = this.#options;
    const anyOwner = this.#firstSweep && !store.shared;
    const input: RecoverOrphansInput = {
      owner: instanceId,
      now,
      anyOwner,
      limit: recoveryBatch,
      ...interruptedRecord(compensator, stepNames, now),
    };
    for (;;) {
      const recovered = await store.recoverOrphans(input);
      for (const run of recovered) this.#recovered(run, now);
      if (recovered.length < recoveryBatch) break;
    }
    // Only once every orphan of the first sweep is recorded: until then, whatever runs in
    // the unshared store may still be left by a dead process.
    this.#firstSweep = false;
  }

  /** recovered logs and hooks a recovered run and starts its compensations. */
  #recovered(run: OrderRun, claimedAt: number): void {
    const { log, hooks, track } = this.#options;
    const compensating = run.compensations.filter((c) => c.status === 'pending');
    log.warn(
      { order_id: run.orderId, compensating: compensating.map((c) => c.name) },
      'recovered an order interrupted by a dead instance',
    );
    hooks.orderRecovered?.(run.orderId);
    if (compensating.length === 0) return;
    track(
      this.#compensate(run, claimedAt).catch((error: unknown) => {
        // The attempts stay due in the store: the sweep retries them.
        log.error({ err: error, order_id: run.orderId }, 'recording a compensation failed');
      }),
    );
  }

  /**
   * compensate runs the compensations of a recovered run once one of the
   * {@link recoveryConcurrency} slots is free. A run that waited so long that its claim can
   * no longer cover an attempt is left alone: its compensations fall due as the claim runs
   * out, and the sweep that takes due compensations (here or in another instance) runs them,
   * never two instances at once.
   */
  async #compensate(run: OrderRun, claimedAt: number): Promise<void> {
    const { compensator } = this.#options;
    const permit = await this.#compensating.acquire();
    try {
      if (compensator.holdsClaim(claimedAt)) await compensator.compensate(run);
    } finally {
      permit.release();
    }
  }
}

/**
 * interruptedRecord is what is recorded for a run cut off by the death of the process that
 * ran it: failed with kind `interrupted`; nothing is known of its steps, so every step is
 * `interrupted` and every step that can be undone gets a `pending` compensation, planned at
 * `now` (see {@link Compensator.plan}).
 */
export function interruptedRecord(
  compensator: Compensator,
  stepNames: readonly string[],
  now: number,
): Pick<RecoverOrphansInput, 'outcome' | 'compensations'> {
  const compensations = compensator.plan(
    stepNames.map((name) => ({ name, status: 'interrupted' })),
    now,
  );
  const outcome: RecordedOutcome = {
    status: 'error',
    steps: compensations.map((compensation) => ({
      name: compensation.name,
      status: 'interrupted',
      durationMs: 0,
      compensation: compensation.status,
    })),
    error: { kind: 'interrupted', message: kindMessage('interrupted') },
  };
  return { outcome, compensations };
}
