import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ErrorKind } from '../order/errors.js';
import type {
  BeginResult,
  Compensation,
  FinishInput,
  NewRun,
  OrderRun,
  OrderStore,
  RecoverOrphansInput,
} from '../ledger/order-store.js';
import { lockDataDir } from './data-dir-lock.js';
import { GroupCommit } from './group-commit.js';
import { importDriver } from './import-driver.js';
import { openInThreadTransport } from './in-thread-transport.js';
import { decodeRun } from './run-codec.js';
import type { SqliteOp, SqliteResult } from './sqlite-ops.js';
import { asFlag, asRow, asRows, optionalRun } from './sqlite-result.js';
import type { SqliteTransport } from './sqlite-transport.js';
import { openWriterThreadTransport } from './writer-thread-transport.js';
import type { StoreSync } from './store-kinds.js';

export interface SqliteStoreOptions {
  /** Directory of the database (`orders.sqlite`, its write-ahead log, `server.pid`). */
  readonly dataDir: string;
  readonly sync: StoreSync;
}

/**
 * openSqliteOrderStore opens (creating if needed) the embedded store in `dataDir`, migrated.
 * The store belongs to one process: the directory is locked by a pid file, and opening a
 * directory that a live process holds fails. Rejects with the reason if the directory or
 * the database cannot be opened, or if better-sqlite3, the store's driver (an optional peer
 * dependency), is not installed.
 */
export function openSqliteOrderStore(options: SqliteStoreOptions): Promise<SqliteOrderStore> {
  return SqliteOrderStore.open(options);
}

/**
 * SqliteOrderStore is the embedded default {@link OrderStore}: SQLite (better-sqlite3) in
 * write-ahead-log mode. Every call of one event-loop turn, and every call made while a batch
 * commits, is committed in one transaction (see {@link GroupCommit}); a call resolves once
 * its batch is committed.
 *
 * Where the connection runs depends on `sync`. With NORMAL (the default) a commit appends to
 * the log without flushing it, so the batch runs on the event loop's thread, a few
 * microseconds per order, while a checkpointer thread does the flushing part (copying the
 * log into the database file); a lock held by another process is never waited for on the
 * event loop: the batch is retried a few milliseconds later. With FULL each commit waits for
 * the disk, so the connection lives on a writer thread and the event loop only posts
 * batches. Either way a slow disk or a locked database delays commits, never requests.
 *
 * If the writer thread dies, every call in flight and every later call rejects.
 */
export class SqliteOrderStore implements OrderStore {
  readonly shared = false;
  readonly #transport: SqliteTransport;
  readonly #unlock: () => Promise<void>;
  readonly #commits: GroupCommit<SqliteOp, SqliteResult>;
  #closing: Promise<void> | undefined;
  #closed = false;

  /** open is {@link openSqliteOrderStore}. */
  static async open(options: SqliteStoreOptions): Promise<SqliteOrderStore> {
    // Checked once for both transports (the writer thread imports the driver on its own),
    // before the directory is locked.
    await importDriver('better-sqlite3', 'the SQLite order store', () => import('better-sqlite3'));
    await mkdir(options.dataDir, { recursive: true });
    const unlock = await lockDataDir(options.dataDir);
    try {
      const path = join(options.dataDir, 'orders.sqlite');
      const transport =
        options.sync === 'full'
          ? await openWriterThreadTransport(path)
          : await openInThreadTransport(path);
      return new SqliteOrderStore(transport, unlock);
    } catch (error) {
      await unlock();
      throw error;
    }
  }

  // Private: the transport is the store's own business, and its types are the driver's.
  private constructor(transport: SqliteTransport, unlock: () => Promise<void>) {
    this.#transport = transport;
    this.#unlock = unlock;
    this.#commits = new GroupCommit((ops) => transport.execute(ops));
  }

  backlogMs(): number {
    return this.#commits.backlogMs();
  }

  async begin(run: NewRun): Promise<BeginResult> {
    const result = await this.#run({ kind: 'begin', run });
    if (result === true) return { created: true };
    return { created: false, existing: decodeRun(asRow(result)) };
  }

  async restart(
    run: NewRun & { readonly idempotencyKey: string },
    retryable: readonly ErrorKind[],
  ): Promise<boolean> {
    return asFlag(await this.#run({ kind: 'restart', run, retryable }));
  }

  async finish(input: FinishInput): Promise<boolean> {
    return asFlag(await this.#run({ kind: 'finish', input }));
  }

  async recordCompensations(
    runId: string,
    compensations: readonly Compensation[],
    now: number,
  ): Promise<void> {
    await this.#run({ kind: 'recordCompensations', runId, compensations, now });
  }

  async get(orderId: string): Promise<OrderRun | undefined> {
    return optionalRun(await this.#run({ kind: 'get', orderId }));
  }

  async getRun(runId: string): Promise<OrderRun | undefined> {
    return optionalRun(await this.#run({ kind: 'getRun', runId }));
  }

  async getByKey(key: string): Promise<OrderRun | undefined> {
    return optionalRun(await this.#run({ kind: 'getByKey', key }));
  }

  async renewLeases(
    owner: string,
    runIds: readonly string[],
    leaseUntil: number,
    now: number,
  ): Promise<void> {
    await this.#run({ kind: 'renewLeases', owner, runIds, leaseUntil, now });
  }

  async recoverOrphans(input: RecoverOrphansInput): Promise<OrderRun[]> {
    return asRows(await this.#run({ kind: 'recoverOrphans', input })).map(decodeRun);
  }

  async claimDueCompensations(now: number, claimUntil: number, limit: number): Promise<OrderRun[]> {
    return asRows(await this.#run({ kind: 'claimDue', now, claimUntil, limit })).map(decodeRun);
  }

  async openCompensations(limit: number): Promise<OrderRun[]> {
    return asRows(await this.#run({ kind: 'openCompensations', limit })).map(decodeRun);
  }

  async settleFlag(runId: string, step: string, now: number): Promise<boolean> {
    return asFlag(await this.#run({ kind: 'settleFlag', runId, step, now }));
  }

  /** close commits what is queued, stops the thread and unlocks the directory. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.#commits.drained();
    this.#closed = true;
    await this.#transport.close();
    await this.#unlock();
  }

  #run(op: SqliteOp): Promise<SqliteResult> {
    if (this.#closed) return Promise.reject(new Error('the order store is closed'));
    const failure = this.#transport.failure;
    if (failure !== undefined) return Promise.reject(failure);
    return this.#commits.run(op);
  }
}
