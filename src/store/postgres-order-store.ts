import type pg from 'pg';
import type { ErrorKind } from '../order/errors.js';
import { claimDue, settledFlag } from '../ledger/compensation-rules.js';
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
import { GroupCommit } from './group-commit.js';
import { importDriver } from './import-driver.js';
import { migrations, type Migration } from './postgres-migrations.js';
import {
  compensationColumns,
  decodeCompensations,
  decodeRun,
  runColumns,
  type RunRow,
} from './run-codec.js';

export interface PostgresStoreOptions {
  /** A `postgres://` connection string. */
  readonly connectionString: string;
  /** Connections in the pool. */
  readonly poolSize: number;
}

/**
 * openPostgresOrderStore connects a pool to PostgreSQL and migrates the schema. Fails with
 * the driver's error if the database is unreachable or the migration fails; the pool is
 * closed then. Fails if pg, the store's driver (an optional peer dependency), is not installed.
 */
export function openPostgresOrderStore(options: PostgresStoreOptions): Promise<PostgresOrderStore> {
  return PostgresOrderStore.open(options);
}

/** Any number distinct to this schema: serializes migrations of concurrent instances. */
const migrationLockKey = 6_006_001;

/**
 * migrate applies the migrations not yet recorded in `schema_migrations`, each in its own
 * transaction, under an advisory lock so instances starting together migrate once. Fails
 * with the database's error, leaving the failed migration unapplied.
 */
async function migrate(pool: pg.Pool, all: readonly Migration[] = migrations): Promise<void> {
  // CREATE TABLE IF NOT EXISTS is not safe against itself run concurrently: under the lock.
  await transaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [migrationLockKey]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  });
  for (const migration of all) {
    await transaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [migrationLockKey]);
      const applied = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [
        migration.version,
      ]);
      if (applied.rows.length > 0) return;
      for (const statement of migration.statements) await client.query(statement);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
    });
  }
}

/** The writes of the order path, committed in groups. */
type GroupedWrite =
  | { readonly kind: 'begin'; readonly run: NewRun }
  | { readonly kind: 'finish'; readonly input: FinishInput };

/**
 * PostgresOrderStore is the shared {@link OrderStore}: any number of instances use one
 * database, each recovering only runs whose owner's lease expired. The writes of the order
 * path (a run's start and its outcome) of one event-loop turn, and those made while a group
 * commits, are committed in one transaction with one multi-row statement each (see
 * {@link GroupCommit}); the rarer calls (reads, claims, compensations) run on their own.
 * The unique index on the idempotency key is the arbiter of keyed submission: `INSERT ...
 * ON CONFLICT DO NOTHING` lets exactly one of concurrent inserts through.
 */
export class PostgresOrderStore implements OrderStore {
  readonly shared = true;
  readonly #pool: pg.Pool;
  readonly #writes: GroupCommit<GroupedWrite, boolean>;

  /** open is {@link openPostgresOrderStore}. */
  static async open(options: PostgresStoreOptions): Promise<PostgresOrderStore> {
    const { default: pg } = await importDriver(
      'pg',
      'the PostgreSQL order store',
      () => import('pg'),
    );
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolSize,
      // A database that stops answering fails the calls that wait for it, rather than holding
      // their orders (and their admission) forever.
      connectionTimeoutMillis: 5_000,
      query_timeout: 30_000,
    });
    // An idle client that loses its connection emits 'error' on the pool; without a listener
    // that would crash the process. The next query gets a fresh connection.
    pool.on('error', () => undefined);
    try {
      await migrate(pool);
    } catch (error) {
      await pool.end();
      throw error;
    }
    return new PostgresOrderStore(pool);
  }

  // Private: the pool's type is the driver's, which the package's public types leave out.
  private constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.#writes = new GroupCommit((writes) => this.#commit(writes));
  }

  backlogMs(): number {
    return this.#writes.backlogMs();
  }

  async begin(run: NewRun): Promise<BeginResult> {
    if (await this.#writes.run({ kind: 'begin', run })) return { created: true };
    const existing = await this.getByKey(run.idempotencyKey ?? '');
    if (existing === undefined) throw new Error(`run of key ${run.idempotencyKey} vanished`);
    return { created: false, existing };
  }

  async restart(
    run: NewRun & { readonly idempotencyKey: string },
    retryable: readonly ErrorKind[],
  ): Promise<boolean> {
    return transaction(this.#pool, async (client) => {
      // The row lock serializes concurrent restarts: the second one waits, re-reads the row,
      // finds its key gone, and matches nothing.
      const held = rowsOf(
        await client.query<never>(
          `SELECT ${runColumns} FROM order_runs WHERE idempotency_key = $1 FOR UPDATE`,
          [run.idempotencyKey],
        ),
      )[0];
      if (held === undefined) return false;
      const previous = decodeRun(held);
      if (!mayRestart(previous, run.fingerprint, retryable)) return false;
      await client.query(`UPDATE order_runs SET idempotency_key = NULL WHERE run_id = $1`, [
        previous.runId,
      ]);
      await client.query(
        `INSERT INTO order_runs (run_id, order_id, idempotency_key, fingerprint, order_json,
           state, attempt, owner, lease_until, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $9)`,
        [
          run.runId,
          run.orderId,
          run.idempotencyKey,
          run.fingerprint ?? null,
          JSON.stringify(run.order),
          previous.attempt + 1,
          run.owner,
          run.leaseUntil,
          run.now,
        ],
      );
      return true;
    });
  }

  finish(input: FinishInput): Promise<boolean> {
    return this.#writes.run({ kind: 'finish', input });
  }

  async recordCompensations(
    runId: string,
    compensations: readonly Compensation[],
    now: number,
  ): Promise<void> {
    await writeCompensations(this.#pool, runId, compensations, now);
  }

  async get(orderId: string): Promise<OrderRun | undefined> {
    return this.#one(`WHERE order_id = $1 ORDER BY seq DESC LIMIT 1`, [orderId]);
  }

  async getRun(runId: string): Promise<OrderRun | undefined> {
    return this.#one(`WHERE run_id = $1`, [runId]);
  }

  async getByKey(key: string): Promise<OrderRun | undefined> {
    return this.#one(`WHERE idempotency_key = $1`, [key]);
  }

  async renewLeases(
    owner: string,
    runIds: readonly string[],
    leaseUntil: number,
    now: number,
  ): Promise<void> {
    await this.#pool.query(
      `UPDATE order_runs SET lease_until = $2, updated_at = $3
        WHERE owner = $1 AND state = 'running' AND run_id = ANY($4::text[])`,
      [owner, leaseUntil, now, [...runIds]],
    );
  }

  async recoverOrphans(input: RecoverOrphansInput): Promise<OrderRun[]> {
    const { next_compensation_at, attention } = compensationColumns(input.compensations);
    // One UPDATE both selects and records the batch. Its row locks make the batches of
    // concurrent recoverers disjoint: SKIP LOCKED leaves a row another one is taking to it,
    // and a row it finished meanwhile is read again once unlocked and no longer matches.
    const recovered = await this.#pool.query<never>(
      `WITH orphans AS (
         SELECT seq FROM order_runs
          WHERE state = 'running'
            AND (lease_until < $2 OR ($3 AND owner IS DISTINCT FROM $1))
          ORDER BY seq LIMIT $4
          FOR UPDATE SKIP LOCKED)
       UPDATE order_runs r
          SET state = 'finished', owner = NULL, lease_until = NULL, error_kind = $5,
              outcome = $6, compensations = $7, next_compensation_at = $8, attention = $9,
              updated_at = $2, finished_at = $2
         FROM orphans WHERE r.seq = orphans.seq
       RETURNING ${prefixed('r', runColumns)}`,
      [
        input.owner,
        input.now,
        input.anyOwner,
        input.limit,
        input.outcome.error?.kind ?? null,
        JSON.stringify(input.outcome),
        JSON.stringify(input.compensations),
        next_compensation_at,
        attention,
      ],
    );
    return rowsOf(recovered).map(decodeRun);
  }

  async claimDueCompensations(now: number, claimUntil: number, limit: number): Promise<OrderRun[]> {
    return transaction(this.#pool, async (client) => {
      const due = rowsOf(
        await client.query<never>(
          `SELECT ${runColumns} FROM order_runs WHERE next_compensation_at <= $1
            ORDER BY next_compensation_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
          [now, limit],
        ),
      );
      for (const row of due) {
        const claimed = claimDue(decodeCompensations(row.compensations), now, claimUntil);
        if (claimed !== undefined) {
          await writeCompensations(client, row.run_id, claimed, Number(row.updated_at));
        }
      }
      return due.map(decodeRun);
    });
  }

  async openCompensations(limit: number): Promise<OrderRun[]> {
    const open = await this.#pool.query<never>(
      `SELECT ${runColumns} FROM order_runs WHERE attention = 1 ORDER BY seq LIMIT $1`,
      [limit],
    );
    return rowsOf(open).map(decodeRun);
  }

  async settleFlag(runId: string, step: string, now: number): Promise<boolean> {
    return transaction(this.#pool, async (client) => {
      const rows = rowsOf(
        await client.query<never>(
          `SELECT ${runColumns} FROM order_runs WHERE run_id = $1 FOR UPDATE`,
          [runId],
        ),
      );
      const row = rows[0];
      const settled =
        row === undefined ? undefined : settledFlag(decodeCompensations(row.compensations), step);
      if (settled === undefined) return false;
      await writeCompensations(client, runId, settled, now);
      return true;
    });
  }

  async close(): Promise<void> {
    await this.#writes.drained();
    await this.#pool.end();
  }

  async #one(where: string, params: unknown[]): Promise<OrderRun | undefined> {
    const row = rowsOf(
      await this.#pool.query<never>(`SELECT ${runColumns} FROM order_runs ${where}`, params),
    )[0];
    return row === undefined ? undefined : decodeRun(row);
  }

  /**
   * commit writes a group in one transaction: every begin with one INSERT, every finish
   * with one UPDATE. Resolves with, per write, whether it took effect.
   */
  #commit(writes: GroupedWrite[]): Promise<boolean[]> {
    return transaction(this.#pool, async (client) => {
      const begins = writes.flatMap((write) => (write.kind === 'begin' ? [write.run] : []));
      const finishes = writes.flatMap((write) => (write.kind === 'finish' ? [write.input] : []));
      const created = begins.length > 0 ? await insertRuns(client, begins) : new Set<string>();
      const finished = finishes.length > 0 ? await finishRuns(client, finishes) : new Set<string>();
      return writes.map((write) =>
        write.kind === 'begin' ? created.has(write.run.runId) : finished.has(write.input.runId),
      );
    });
  }
}

async function insertRuns(client: pg.PoolClient, runs: readonly NewRun[]): Promise<Set<string>> {
  const inserted = await client.query<{ run_id: string }>(
    `INSERT INTO order_runs (run_id, order_id, idempotency_key, fingerprint, order_json, state,
       attempt, owner, lease_until, created_at, updated_at)
     SELECT run_id, order_id, idempotency_key, fingerprint, order_json, 'running', 1, owner,
            lease_until, now, now
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[],
                   $7::bigint[], $8::bigint[])
         AS t(run_id, order_id, idempotency_key, fingerprint, order_json, owner, lease_until, now)
     ON CONFLICT (idempotency_key) DO NOTHING
     RETURNING run_id`,
    [
      runs.map((run) => run.runId),
      runs.map((run) => run.orderId),
      runs.map((run) => run.idempotencyKey ?? null),
      runs.map((run) => run.fingerprint ?? null),
      runs.map((run) => JSON.stringify(run.order)),
      runs.map((run) => run.owner),
      runs.map((run) => run.leaseUntil),
      runs.map((run) => run.now),
    ],
  );
  return new Set(inserted.rows.map((row) => row.run_id));
}

async function finishRuns(
  client: pg.PoolClient,
  inputs: readonly FinishInput[],
): Promise<Set<string>> {
  const columns = inputs.map((input) => compensationColumns(input.compensations));
  const finished = await client.query<{ run_id: string }>(
    `UPDATE order_runs r
        SET state = 'finished', owner = NULL, lease_until = NULL, error_kind = u.error_kind,
            outcome = u.outcome, compensations = u.compensations,
            next_compensation_at = u.next_at, attention = u.attention,
            updated_at = u.now, finished_at = u.now
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::bigint[],
                   $7::smallint[], $8::bigint[])
         AS u(run_id, owner, error_kind, outcome, compensations, next_at, attention, now)
      WHERE r.run_id = u.run_id AND r.owner = u.owner AND r.state = 'running'
      RETURNING r.run_id`,
    [
      inputs.map((input) => input.runId),
      inputs.map((input) => input.owner),
      inputs.map((input) => input.outcome.error?.kind ?? null),
      inputs.map((input) => JSON.stringify(input.outcome)),
      inputs.map((input) => JSON.stringify(input.compensations)),
      columns.map((column) => column.next_compensation_at),
      columns.map((column) => column.attention),
      inputs.map((input) => input.now),
    ],
  );
  return new Set(finished.rows.map((row) => row.run_id));
}

async function writeCompensations(
  client: pg.Pool | pg.PoolClient,
  runId: string,
  compensations: readonly Compensation[],
  now: number,
): Promise<void> {
  const { next_compensation_at, attention } = compensationColumns(compensations);
  await client.query(
    `UPDATE order_runs SET compensations = $2, next_compensation_at = $3, attention = $4,
            updated_at = $5
      WHERE run_id = $1 AND state = 'finished'`,
    [runId, JSON.stringify(compensations), next_compensation_at, attention, now],
  );
}

/** transaction runs `work` on one connection between BEGIN and COMMIT (ROLLBACK if it fails). */
async function transaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const value = await work(client);
    await client.query('COMMIT');
    return value;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * rowsOf reads the rows of a SELECT of {@link runColumns}. `pg` types rows as `any`; asking
 * for `never` rows and stating the type here keeps that `any` out of the store.
 */
function rowsOf(result: pg.QueryResult<never>): RunRow[] {
  return result.rows;
}

function prefixed(alias: string, columns: string): string {
  return columns
    .split(',')
    .map((column) => `${alias}.${column.trim()}`)
    .join(', ');
}
