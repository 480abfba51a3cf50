import { migrations, type Migration } from './migrations.js';
import type {
  BeginInput,
  BeginResult,
  CompensationStatus,
  CompensationUpdate,
  DueCompensation,
  FinishInput,
  OrderStore,
  StepUpdate,
  StoredOrder,
  StoredStep,
  StoredStepStatus,
} from './order-store.js';

/** SqlClient is what the SQL store needs of a driver: parameterized queries. */
export interface SqlClient {
  // Row is the caller's statement of what its SELECT list returns; the driver cannot check it.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  query<Row>(text: string, params?: unknown[]): Promise<{ rows: Row[] }>;
}

/** SqlDatabase adds transactions and closing; adapters wrap PGlite and `pg`. */
export interface SqlDatabase extends SqlClient {
  /** Runs `work` in one transaction: committed if it resolves, rolled back if it rejects. */
  transaction<T>(work: (tx: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Any number distinct to this schema: serializes migrations of concurrent instances. */
const migrationLockKey = 6_006_001;

/**
 * migrate applies the migrations not yet recorded in `schema_migrations`, each in its own
 * transaction, under an advisory lock so instances starting together migrate once. Fails
 * with the database's error, leaving the failed migration unapplied.
 */
export async function migrate(
  db: SqlDatabase,
  all: readonly Migration[] = migrations,
): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  for (const migration of all) {
    await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [migrationLockKey]);
      const applied = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [
        migration.version,
      ]);
      if (applied.rows.length > 0) return;
      for (const statement of migration.statements) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
    });
  }
}

interface OrderRow {
  order_id: string;
  request_hash: string;
  request: unknown;
  state: 'running' | 'finished';
  attempt: number;
  owner: string | null;
  lease_until: number | string | null;
  error_kind: string | null;
  outcome: unknown;
  created_at: number | string;
  updated_at: number | string;
  finished_at: number | string | null;
}

interface StepRow {
  order_id: string;
  name: string;
  status: StoredStepStatus;
  detail: string | null;
  duration_ms: number | null;
  compensation: CompensationStatus;
  compensation_attempts: number;
  next_compensation_at: number | string | null;
  compensation_error: string | null;
  needs_operator: boolean;
  updated_at: number | string;
}

const orderColumns = `order_id, request_hash, request, state, attempt, owner, lease_until,
  error_kind, outcome, created_at, updated_at, finished_at`;

/**
 * SqlOrderStore implements {@link OrderStore} in SQL over any {@link SqlDatabase}: the
 * embedded and the PostgreSQL store differ only in their driver. The unique primary key on
 * `order_id` is the arbiter of idempotency: `INSERT ... ON CONFLICT DO NOTHING` lets exactly
 * one of concurrent inserts through.
 */
export class SqlOrderStore implements OrderStore {
  readonly shared: boolean;
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase, options: { shared: boolean }) {
    this.#db = db;
    this.shared = options.shared;
  }

  async begin(input: BeginInput): Promise<BeginResult> {
    const created = await this.#db.transaction(async (tx) => {
      const inserted = await tx.query<{ order_id: string }>(
        `INSERT INTO orders (order_id, request_hash, request, state, attempt, owner, lease_until,
           created_at, updated_at)
         VALUES ($1, $2, $3, 'running', 1, $4, $5, $6, $6)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING order_id`,
        [
          input.orderId,
          input.requestHash,
          JSON.stringify(input.request),
          input.owner,
          input.leaseUntil,
          input.now,
        ],
      );
      if (inserted.rows.length === 0) return false;
      await insertSteps(tx, input);
      return true;
    });
    const order = await this.get(input.orderId);
    if (order === undefined) throw new Error(`order ${input.orderId} vanished after begin`);
    return { created, order };
  }

  async restart(input: BeginInput): Promise<StoredOrder | undefined> {
    const restarted = await this.#db.transaction(async (tx) => {
      // The row lock taken by UPDATE serializes concurrent restarts: the second one re-reads
      // the row, finds it running, and matches nothing.
      const updated = await tx.query<{ order_id: string }>(
        `UPDATE orders
            SET state = 'running', attempt = attempt + 1, owner = $3, lease_until = $4,
                error_kind = NULL, outcome = NULL, finished_at = NULL, updated_at = $5
          WHERE order_id = $1 AND request_hash = $2 AND state = 'finished'
            AND NOT EXISTS (SELECT 1 FROM order_steps s WHERE s.order_id = orders.order_id
                              AND s.compensation IN ('pending', 'compensation_failed'))
          RETURNING order_id`,
        [input.orderId, input.requestHash, input.owner, input.leaseUntil, input.now],
      );
      if (updated.rows.length === 0) return false;
      await tx.query('DELETE FROM order_steps WHERE order_id = $1', [input.orderId]);
      await insertSteps(tx, input);
      return true;
    });
    return restarted ? this.get(input.orderId) : undefined;
  }

  async recordStep(orderId: string, owner: string, step: StepUpdate, now: number): Promise<void> {
    await this.#db.query(
      `UPDATE order_steps s
          SET status = $4, detail = $5, duration_ms = $6, updated_at = $7
         FROM orders o
        WHERE s.order_id = $1 AND s.name = $3 AND o.order_id = s.order_id
          AND o.owner = $2 AND o.state = 'running'`,
      [orderId, owner, step.name, step.status, step.detail ?? null, step.durationMs ?? null, now],
    );
  }

  async finish(input: FinishInput): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const updated = await tx.query<{ order_id: string }>(
        `UPDATE orders
            SET state = 'finished', error_kind = $3, outcome = $4, owner = NULL,
                lease_until = NULL, finished_at = $5, updated_at = $5
          WHERE order_id = $1 AND owner = $2 AND state = 'running'
          RETURNING order_id`,
        [
          input.orderId,
          input.owner,
          input.errorKind ?? null,
          JSON.stringify(input.outcome),
          input.now,
        ],
      );
      if (updated.rows.length === 0) return false;
      for (const step of input.steps) {
        await tx.query(
          `UPDATE order_steps SET status = $3, detail = $4, duration_ms = $5, updated_at = $6
            WHERE order_id = $1 AND name = $2`,
          [
            input.orderId,
            step.name,
            step.status,
            step.detail ?? null,
            step.durationMs ?? null,
            input.now,
          ],
        );
      }
      for (const update of input.compensations) {
        await updateCompensation(tx, input.orderId, update, input.now);
      }
      return true;
    });
  }

  async recordCompensation(
    orderId: string,
    update: CompensationUpdate,
    now: number,
  ): Promise<void> {
    await updateCompensation(this.#db, orderId, update, now);
  }

  async get(orderId: string): Promise<StoredOrder | undefined> {
    const orders = await this.#db.query<OrderRow>(
      `SELECT ${orderColumns} FROM orders WHERE order_id = $1`,
      [orderId],
    );
    const row = orders.rows[0];
    if (row === undefined) return undefined;
    return this.#withSteps(row);
  }

  async renewLeases(
    owner: string,
    orderIds: readonly string[],
    leaseUntil: number,
    now: number,
  ): Promise<void> {
    await this.#db.query(
      `UPDATE orders SET lease_until = $2, updated_at = $3
        WHERE owner = $1 AND state = 'running' AND order_id = ANY($4::text[])`,
      [owner, leaseUntil, now, [...orderIds]],
    );
  }

  async claimOrphans(
    owner: string,
    now: number,
    leaseUntil: number,
    options: { anyOwner?: boolean } = {},
  ): Promise<StoredOrder[]> {
    // One UPDATE both selects and takes over: its row locks make two instances' claims
    // disjoint (the loser re-checks the WHERE clause against the winner's new lease).
    const claimed = await this.#db.query<OrderRow>(
      `UPDATE orders SET owner = $1, lease_until = $3, updated_at = $2
        WHERE state = 'running' AND owner IS DISTINCT FROM $1
          AND ($4 OR lease_until IS NULL OR lease_until < $2)
        RETURNING ${orderColumns}`,
      [owner, now, leaseUntil, options.anyOwner === true],
    );
    return Promise.all(claimed.rows.map((row) => this.#withSteps(row)));
  }

  async claimDueCompensations(
    now: number,
    claimUntil: number,
    limit: number,
  ): Promise<DueCompensation[]> {
    const claimed = await this.#db.query<{
      order_id: string;
      name: string;
      compensation_attempts: number;
      request: unknown;
    }>(
      `WITH due AS (
         SELECT s.order_id, s.name FROM order_steps s JOIN orders o ON o.order_id = s.order_id
          WHERE o.state = 'finished' AND NOT s.needs_operator
            AND s.compensation IN ('pending', 'compensation_failed')
            AND s.next_compensation_at <= $1
          ORDER BY s.next_compensation_at
          LIMIT $3
          FOR UPDATE OF s SKIP LOCKED)
       UPDATE order_steps s SET next_compensation_at = $2
         FROM due, orders o
        WHERE s.order_id = due.order_id AND s.name = due.name AND o.order_id = s.order_id
       RETURNING s.order_id, s.name, s.compensation_attempts, o.request`,
      [now, claimUntil, limit],
    );
    return claimed.rows.map((row) => ({
      orderId: row.order_id,
      name: row.name,
      attempts: row.compensation_attempts,
      request: row.request,
    }));
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  async #withSteps(row: OrderRow): Promise<StoredOrder> {
    const steps = await this.#db.query<StepRow>(
      `SELECT order_id, name, status, detail, duration_ms, compensation, compensation_attempts,
              next_compensation_at, compensation_error, needs_operator, updated_at
         FROM order_steps WHERE order_id = $1 ORDER BY position`,
      [row.order_id],
    );
    return {
      orderId: row.order_id,
      requestHash: row.request_hash,
      request: row.request,
      state: row.state,
      attempt: row.attempt,
      owner: row.owner ?? undefined,
      leaseUntil: optionalNumber(row.lease_until),
      errorKind: row.error_kind ?? undefined,
      outcome: row.outcome ?? undefined,
      steps: steps.rows.map(toStoredStep),
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
      finishedAt: optionalNumber(row.finished_at),
    };
  }
}

async function insertSteps(tx: SqlClient, input: BeginInput): Promise<void> {
  for (const [position, name] of input.stepNames.entries()) {
    await tx.query(
      `INSERT INTO order_steps (order_id, position, name, status, updated_at)
       VALUES ($1, $2, $3, 'running', $4)`,
      [input.orderId, position, name, input.now],
    );
  }
}

async function updateCompensation(
  client: SqlClient,
  orderId: string,
  update: CompensationUpdate,
  now: number,
): Promise<void> {
  await client.query(
    `UPDATE order_steps
        SET compensation = $3, compensation_attempts = $4, next_compensation_at = $5,
            compensation_error = $6, needs_operator = $7, updated_at = $8
      WHERE order_id = $1 AND name = $2`,
    [
      orderId,
      update.name,
      update.compensation,
      update.attempts,
      update.nextAttemptAt ?? null,
      update.error ?? null,
      update.needsOperator === true,
      now,
    ],
  );
}

function toStoredStep(row: StepRow): StoredStep {
  return {
    name: row.name,
    status: row.status,
    detail: row.detail ?? undefined,
    durationMs: row.duration_ms ?? undefined,
    compensation: row.compensation,
    compensationAttempts: row.compensation_attempts,
    nextCompensationAt: optionalNumber(row.next_compensation_at),
    compensationError: row.compensation_error ?? undefined,
    needsOperator: row.needs_operator,
    updatedAt: Number(row.updated_at),
  };
}

/** int8 columns come back as numbers from PGlite and as strings from `pg`. */
function optionalNumber(value: number | string | null): number | undefined {
  return value === null ? undefined : Number(value);
}
