import { kindMessage } from '../order/errors.js';
import type { Compensator } from './compensator.js';
import type { LedgerHooks, LedgerLogger } from './ledger-options.js';
import type { OrderRun, OrderStore, RecordedOutcome } from './order-store.js';

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
}

/** How many orphans or due compensations one sweep takes on. */
const sweepBatch = 100;

/**
 * Recovery keeps the record true when processes die. Each {@link sweep} renews the leases of
 * the runs this instance executes, takes over the runs whose owner is gone (their lease
 * expired; at the first sweep of an unshared store, every running run, since the store
 * belongs to this process alone and whatever runs there was left by one that died) and
 * records them `interrupted`, then runs the compensations that are due.
 */
export class Recovery {
  readonly #options: RecoveryOptions;
  #firstSweep = true;

  constructor(options: RecoveryOptions) {
    this.#options = options;
  }

  /**
   * sweep does one round. Rejects with the store's error; whatever was recorded before the
   * error stays recorded, and the next sweep takes up the rest.
   */
  async sweep(): Promise<void> {
    const { store, instanceId, leaseMs, compensator } = this.#options;
    const now = this.#options.now();
    const leaseUntil = now + leaseMs;
    const executing = this.#options.executing();
    if (executing.length > 0) await store.renewLeases(instanceId, executing, leaseUntil, now);
    const anyOwner = this.#firstSweep && !store.shared;
    this.#firstSweep = false;
    const orphans = await store.claimOrphans(instanceId, now, leaseUntil, {
      anyOwner,
      limit: sweepBatch,
    });
    for (const orphan of orphans) await this.#recover(orphan);
    const due = await store.claimDueCompensations(now, now + compensator.claimWindowMs, sweepBatch);
    await Promise.all(due.map((run) => compensator.compensate(run, now)));
  }

  /**
   * recover records a run left running by a dead instance as failed with kind
   * `interrupted`: nothing is known of its steps, so every step that can be undone gets a
   * `pending` compensation. Recording first means a second crash cannot lose them; the
   * compensations then run at once.
   */
  async #recover(orphan: OrderRun): Promise<void> {
    const { store, compensator, instanceId, stepNames, log, hooks } = this.#options;
    const now = this.#options.now();
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
    const finished = await store.finish({
      runId: orphan.runId,
      owner: instanceId,
      outcome,
      compensations,
      now,
    });
    if (!finished) return;
    log.warn(
      {
        order_id: orphan.orderId,
        compensating: compensations.filter((c) => c.status === 'pending').map((c) => c.name),
      },
      'recovered an order interrupted by a dead instance',
    );
    hooks.orderRecovered?.(orphan.orderId);
    await compensator.compensate({ ...orphan, compensations });
  }
}
