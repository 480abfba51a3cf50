import type Database from 'better-sqlite3';
import {
  claimDue,
  isAttention,
  nextCompensationAt,
  settledFlag,
} from '../ledger/compensation-rules.js';
import type {
  Compensation,
  FinishInput,
  NewRun,
  RecoverOrphansInput,
} from '../ledger/order-store.js';
import { mayRestart } from '../ledger/restart-rule.js';
import type { ErrorKind } from '../order/errors.js';
import {
  compensationColumns,
  decodeCompensations,
  decodeRun,
  runColumns,
  type RunRow,
} from './run-codec.js';
import type { StoreSync } from './store-kinds.js';

/**
 * SqliteOp is one call of the SQLite store, as sent to the thread that owns the database.
 * Every field is plain data, so it crosses threads by structured clone.
 */
export type SqliteOp =
  | { readonly kind: 'begin'; readonly run: NewRun }
  | { readonly kind: 'restart'; readonly run: NewRun; readonly retryable: readonly ErrorKind[] }
  | { readonly kind: 'finish'; readonly input: FinishInput }
  | {
      readonly kind: 'recordCompensations';
      readonly runId: string;
      readonly compensations: readonly Compensation[];
      readonly now: number;
    }
  | { readonly kind: 'get'; readonly orderId: string }
  | { readonly kind: 'getRun'; readonly runId: string }
  | { readonly kind: 'getByKey'; readonly key: string }
  | {
      readonly kind: 'renewLeases';
      readonly owner: string;
      readonly runIds: readonly string[];
      readonly leaseUntil: number;
      readonly now: number;
    }
  | { readonly kind: 'recoverOrphans'; readonly input: RecoverOrphansInput }
  | {
      readonly kind: 'claimDue';
      readonly now: number;
      readonly claimUntil: number;
      readonly limit: number;
    }
  | { readonly kind: 'openCompensations'; readonly limit: number }
  | {
      readonly kind: 'settleFlag';
      readonly runId: string;
      readonly step: string;
      readonly now: number;
    };

/**
 * SqliteResult is the result of one {@link SqliteOp}: a flag (begin: created; restart,
 * finish, settleFlag: done), a row or null (the reads, and begin of a key already held: the
 * holder), rows (claims, lists), or null for writes with nothing to tell.
 */
export type SqliteResult = boolean | RunRow | RunRow[] | null;

/** The schema, as versioned migrations; a migration is never edited once released. */
const migrations: readonly (readonly string[])[] = [
  [
    `CREATE TABLE order_runs (
      seq                  INTEGER PRIMARY KEY,
      run_id               TEXT NOT NULL UNIQUE,
      order_id             TEXT NOT NULL,
      idempotency_key      TEXT UNIQUE,
      fingerprint          TEXT,
      order_json           TEXT NOT NULL,
      state                TEXT NOT NULL CHECK (state IN ('running', 'finished')),
      attempt              INTEGER NOT NULL,
      owner                TEXT,
      lease_until          INTEGER,
      error_kind           TEXT,
      outcome              TEXT,
      compensations        TEXT NOT NULL DEFAULT '[]',
      next_compensation_at INTEGER,
      attention            INTEGER NOT NULL DEFAULT 0,
      created_at           INTEGER NOT NULL,
      updated_at           INTEGER NOT NULL,
      finished_at          INTEGER
    )`,
    `CREATE INDEX order_runs_order ON order_runs (order_id, seq)`,
    `CREATE INDEX order_runs_running ON order_runs (lease_until) WHERE state = 'running'`,
    `CREATE INDEX order_runs_due ON order_runs (next_compensation_at)
       WHERE next_compensation_at IS NOT NULL`,
    `CREATE INDEX order_runs_attention ON order_runs (seq) WHERE attention = 1`,
  ],
];

/** Where a connection runs: the event loop's thread, or a thread of its own. */
export type ConnectionRole = 'in-thread' | 'writer-thread' | 'checkpointer';

/**
 * prepareDatabase configures a connection and migrates the database to the latest schema.
 * Every connection uses the write-ahead log, and `synchronous` NORMAL (a commit survives a
 * crash of the process) or FULL (it also survives a crash of the machine: each commit is
 * flushed to the disk).
 *
 * A connection on the event loop's thread must never block it: it does not wait for a lock
 * (`busy_timeout` 0: the caller retries later) and leaves checkpoints — the part that writes
 * and flushes the database file — to a checkpointer connection on another thread. A
 * connection on a thread of its own may wait for a lock, up to 5 s.
 */
export function prepareDatabase(
  db: Database.Database,
  sync: StoreSync,
  role: ConnectionRole,
): void {
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma(`busy_timeout = ${role === 'in-thread' ? 0 : 5000}`);
  if (role === 'in-thread') db.pragma('wal_autocheckpoint = 0');
  if (role === 'checkpointer') return;
  const version = Number(db.pragma('user_version', { simple: true }));
  for (let v = version; v < migrations.length; v++) {
    db.transaction(() => {
      for (const statement of migrations[v] ?? []) db.exec(statement);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/** isBusy tells whether `error` is SQLite's "database is locked" (another writer holds it). */
export function isBusy(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    'code' in error &&
    typeof error.code === 'string' &&
    error.code.startsWith('SQLITE_BUSY')
  );
}

/**
 * SqliteExecutor runs batches of {@link SqliteOp}, each batch in one transaction: one
 * commit, one flush of the log, for every call of one event-loop turn of the store's users.
 */
export class SqliteExecutor {
  readonly #db: Database.Database;
  readonly #statements: ReturnType<typeof prepareStatements>;
  readonly #runBatch: (ops: readonly SqliteOp[]) => SqliteResult[];

  constructor(db: Database.Database) {
    this.#db = db;
    this.#statements = prepareStatements(db);
    this.#runBatch = db.transaction((ops: readonly SqliteOp[]) => ops.map((op) => this.#run(op)));
  }

  /** execute runs `ops` in one transaction; if any fails, none has an effect and it throws. */
  execute(ops: readonly SqliteOp[]): SqliteResult[] {
    return this.#runBatch(ops);
  }

  close(): void {
    this.#db.close();
  }

  #run(op: SqliteOp): SqliteResult {
    const s = this.#statements;
    switch (op.kind) {
      case 'begin':
        if (this.#insert(op.run, 1)) return true;
        return s.byKey.get(op.run.idempotencyKey) ?? null;
      case 'restart': {
        const holder = s.byKey.get(op.run.idempotencyKey);
        if (
          holder === undefined ||
          !mayRestart(decodeRun(holder), op.run.fingerprint, op.retryable)
        ) {
          return false;
        }
        s.dropKey.run(holder.run_id);
        return this.#insert(op.run, holder.attempt + 1);
      }
      case 'finish': {
        const { input } = op;
        const changed = s.finish.run(...finishedValues(input), input.runId, input.owner);
        return changed.changes > 0;
      }
      case 'recordCompensations':
        this.#writeCompensations(op.runId, op.compensations, op.now);
        return null;
      case 'get':
        return s.latest.get(op.orderId) ?? null;
      case 'getRun':
        return s.byRun.get(op.runId) ?? null;
      case 'getByKey':
        return s.byKey.get(op.key) ?? null;
      case 'renewLeases':
        for (const runId of op.runIds) {
          s.renew.run({ run_id: runId, owner: op.owner, lease_until: op.leaseUntil, now: op.now });
        }
        return null;
      case 'recoverOrphans': {
        const { input } = op;
        return s.recoverOrphans.all(
          ...finishedValues(input),
          input.now,
          input.anyOwner ? 1 : 0,
          input.owner,
          input.limit,
        );
      }
      case 'claimDue': {
        const due = s.due.all({ now: op.now, limit: op.limit });
        for (const row of due) {
          const claimed = claimDue(decodeCompensations(row.compensations), op.now, op.claimUntil);
          if (claimed !== undefined) this.#writeCompensations(row.run_id, claimed, row.updated_at);
        }
        return due;
      }
      case 'openCompensations':
        return s.attention.all({ limit: op.limit });
      case 'settleFlag': {
        const row = s.byRun.get(op.runId);
        const settled =
          row === undefined
            ? undefined
            : settledFlag(decodeCompensations(row.compensations), op.step);
        if (settled === undefined) return false;
        this.#writeCompensations(op.runId, settled, op.now);
        return true;
      }
    }
  }

  #insert(run: NewRun, attempt: number): boolean {
    const inserted = this.#statements.insert.run(
      run.runId,
      run.orderId,
      run.idempotencyKey ?? null,
      run.fingerprint ?? null,
      JSON.stringify(run.order),
      attempt,
      run.owner,
      run.leaseUntil,
      run.now,
      run.now,
    );
    return inserted.changes > 0;
  }

  #writeCompensations(
    runId: string,
    compensations: readonly Compensation[],
    now: number | string,
  ): void {
    this.#statements.compensations.run({
      run_id: runId,
      compensations: JSON.stringify(compensations),
      ...compensationColumns(compensations),
      now: Number(now),
    });
  }
}

/** The assignments that record a run finished; their values are {@link finishedValues}. */
const finishing = `state = 'finished', owner = NULL, lease_until = NULL,
  error_kind = ?, outcome = ?, compensations = ?, next_compensation_at = ?, attention = ?,
  updated_at = ?, finished_at = ?`;

/** The values of {@link finishing}, in its order. */
type FinishedValues = [
  errorKind: string | null,
  outcome: string,
  compensations: string,
  nextCompensationAt: number | null,
  attention: number,
  updatedAt: number,
  finishedAt: number,
];

/**
 * finishedValues is how a run finished with `outcome` and `compensations` is written. By
 * position: binding by name costs a lookup per column, on every order.
 */
function finishedValues({
  outcome,
  compensations,
  now,
}: Pick<FinishInput, 'outcome' | 'compensations' | 'now'>): FinishedValues {
  return [
    outcome.error?.kind ?? null,
    JSON.stringify(outcome),
    compensations.length === 0 ? '[]' : JSON.stringify(compensations),
    nextCompensationAt(compensations) ?? null,
    isAttention(compensations) ? 1 : 0,
    now,
    now,
  ];
}

function prepareStatements(db: Database.Database) {
  const select = `SELECT ${runColumns} FROM order_runs`;
  return {
    // The two statements of every order take their values by position.
    insert: db.prepare<
      [
        runId: string,
        orderId: string,
        idempotencyKey: string | null,
        fingerprint: string | null,
        orderJson: string,
        attempt: number,
        owner: string,
        leaseUntil: number,
        createdAt: number,
        updatedAt: number,
      ]
    >(
      `INSERT INTO order_runs (run_id, order_id, idempotency_key, fingerprint, order_json, state,
         attempt, owner, lease_until, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)
       ON CONFLICT (idempotency_key) DO NOTHING`,
    ),
    dropKey: db.prepare(`UPDATE order_runs SET idempotency_key = NULL WHERE run_id = ?`),
    finish: db.prepare<[...FinishedValues, runId: string, owner: string]>(
      `UPDATE order_runs SET ${finishing} WHERE run_id = ? AND owner = ? AND state = 'running'`,
    ),
    compensations: db.prepare(
      `UPDATE order_runs
          SET compensations = @compensations, next_compensation_at = @next_compensation_at,
              attention = @attention, updated_at = @now
        WHERE run_id = @run_id AND state = 'finished'`,
    ),
    latest: db.prepare<[string], RunRow>(`${select} WHERE order_id = ? ORDER BY seq DESC LIMIT 1`),
    byRun: db.prepare<[string], RunRow>(`${select} WHERE run_id = ?`),
    byKey: db.prepare<[string | undefined], RunRow>(`${select} WHERE idempotency_key = ?`),
    renew: db.prepare(
      `UPDATE order_runs SET lease_until = @lease_until, updated_at = @now
        WHERE run_id = @run_id AND owner = @owner AND state = 'running'`,
    ),
    // One statement selects and records the batch; the store's one writer makes it atomic.
    recoverOrphans: db.prepare<
      [...FinishedValues, now: number, anyOwner: number, owner: string, limit: number],
      RunRow
    >(
      `UPDATE order_runs SET ${finishing}
        WHERE seq IN (SELECT seq FROM order_runs WHERE state = 'running'
                        AND (lease_until < ? OR (? = 1 AND owner IS NOT ?))
                      ORDER BY seq LIMIT ?)
        RETURNING ${runColumns}`,
    ),
    due: db.prepare<[{ now: number; limit: number }], RunRow>(
      `${select} WHERE next_compensation_at <= @now
        ORDER BY next_compensation_at LIMIT @limit`,
    ),
    attention: db.prepare<[{ limit: number }], RunRow>(
      `${select} WHERE attention = 1 ORDER BY seq LIMIT @limit`,
    ),
  };
}
