import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ErrorKind } from '../order/errors.js';
import type {
  BeginResult,
  Compensation,
  FinishInput,
  NewRun,
  OrderRun,
  OrderStore,
} from '../ledger/order-store.js';
import { GroupCommit } from './group-commit.js';
import Database from 'better-sqlite3';
import { decodeRun, type RunRow } from './run-codec.js';
import {
  SqliteExecutor,
  isBusy,
  prepareDatabase,
  type SqliteOp,
  type SqliteResult,
} from './sqlite-ops.js';

/** What a commit survives: `normal`, a crash of the process; `full`, also of the machine. */
export type SqliteSync = 'normal' | 'full';

export interface SqliteStoreOptions {
  /** Directory of the database (`orders.sqlite`, its write-ahead log, `server.pid`). */
  readonly dataDir: string;
  readonly sync: SqliteSync;
}

/**
 * openSqliteOrderStore opens (creating if needed) the embedded store in `dataDir`, migrated.
 * The store belongs to one process: the directory is locked by a pid file, and opening a
 * directory that a live process holds fails. Rejects with the reason if the directory or
 * the database cannot be opened.
 */
export async function openSqliteOrderStore(options: SqliteStoreOptions): Promise<SqliteOrderStore> {
  await mkdir(options.dataDir, { recursive: true });
  const unlock = await lockDataDir(options.dataDir);
  try {
    const path = join(options.dataDir, 'orders.sqlite');
    const transport = options.sync === 'full' ? await onWriterThread(path) : await inThread(path);
    return new SqliteOrderStore(transport, unlock);
  } catch (error) {
    await unlock();
    throw error;
  }
}

/** SqliteTransport runs the store's batches where its connection lives. */
interface SqliteTransport {
  /** execute runs `ops` in one transaction; rejects if it cannot, with nothing applied. */
  execute(ops: SqliteOp[]): Promise<SqliteResult[]> | SqliteResult[];
  /** failure is set once the transport can run nothing more (its thread died). */
  readonly failure: Error | undefined;
  close(): Promise<void>;
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

  constructor(transport: SqliteTransport, unlock: () => Promise<void>) {
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

  async claimOrphans(
    owner: string,
    now: number,
    leaseUntil: number,
    options: { readonly anyOwner: boolean; readonly limit: number },
  ): Promise<OrderRun[]> {
    const result = await this.#run({ kind: 'claimOrphans', owner, now, leaseUntil, ...options });
    return asRows(result).map(decodeRun);
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

/** How long a batch that finds the database locked is retried before it fails. */
const lockedForMs = 30_000;

/**
 * inThread opens the connection on the event loop's thread, and a checkpointer thread. A
 * batch that finds the database locked by another process is retried every few
 * milliseconds (at most 10) (the event loop serves requests meanwhile), for up to {@link lockedForMs}.
 */
async function inThread(path: string): Promise<SqliteTransport> {
  const db = new Database(path);
  let checkpointer: Worker;
  try {
    prepareDatabase(db, 'normal', 'in-thread');
    checkpointer = await startWorker({ path, sync: 'normal', role: 'checkpointer' });
  } catch (error) {
    db.close();
    throw error;
  }
  const executor = new SqliteExecutor(db);
  const retry = (ops: SqliteOp[], since: number, delayMs: number): Promise<SqliteResult[]> =>
    new Promise((resolve, reject) => {
      setTimeout(() => {
        try {
          resolve(executor.execute(ops));
        } catch (error) {
          if (!isBusy(error) || performance.now() - since > lockedForMs) reject(error);
          else retry(ops, since, Math.min(2 * delayMs, 10)).then(resolve, reject);
        }
      }, delayMs);
    });
  return {
    failure: undefined,
    execute: (ops) => {
      try {
        return executor.execute(ops);
      } catch (error) {
        if (!isBusy(error)) throw error;
        return retry(ops, performance.now(), 2);
      }
    },
    close: async () => {
      await stopWorker(checkpointer);
      db.close();
    },
  };
}

/**
 * onWriterThread opens the connection on a thread of its own and sends it each batch as one
 * string: the thread boundary copies it whole, where a structured clone of the batch would
 * walk every object of every order.
 */
async function onWriterThread(path: string): Promise<SqliteTransport> {
  const worker = await startWorker({ path, sync: 'full', role: 'writer' });
  const inFlight = new Map<
    number,
    { resolve: (results: SqliteResult[]) => void; reject: (error: unknown) => void }
  >();
  let nextId = 0;
  let failure: Error | undefined;
  const fail = (error: Error): void => {
    failure ??= error;
    for (const waiting of inFlight.values()) waiting.reject(failure);
    inFlight.clear();
  };
  worker.on('error', fail);
  worker.on('exit', () => {
    fail(new Error('the order store thread exited'));
  });
  worker.on('message', (message: unknown) => {
    if (typeof message !== 'object' || message === null || !('id' in message)) return;
    const waiting = inFlight.get(Number(message.id));
    if (waiting === undefined) return;
    inFlight.delete(Number(message.id));
    if ('results' in message && Array.isArray(message.results)) {
      waiting.resolve(message.results.map(asResult));
    } else {
      const reason = 'error' in message ? String(message.error) : 'malformed answer';
      waiting.reject(new Error(`order store: ${reason}`));
    }
  });
  return {
    get failure() {
      return failure;
    },
    execute: (ops) =>
      new Promise((resolve, reject) => {
        const id = ++nextId;
        inFlight.set(id, { resolve, reject });
        worker.postMessage({ id, ops: JSON.stringify(ops) });
      }),
    close: () => stopWorker(worker),
  };
}

/** stopWorker asks a store thread to close its connection and resolves once it exited. */
async function stopWorker(worker: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', () => {
      resolve();
    });
  });
  worker.postMessage({ close: true });
  await exited;
}

/** startWorker starts a store thread and resolves once its connection is ready. */
function startWorker(workerData: {
  path: string;
  sync: SqliteSync;
  role: 'writer' | 'checkpointer';
}): Promise<Worker> {
  // From the build the thread runs the compiled file; from the sources (tests, development)
  // it runs the TypeScript file through tsx's require hook, which worker threads accept on
  // every supported Node (its ESM loader they do not on Node 20).
  const fromSources = import.meta.url.endsWith('.ts');
  const worker = fromSources
    ? new Worker(
        `require(${JSON.stringify(createRequire(import.meta.url).resolve('tsx/cjs'))});` +
          `require(${JSON.stringify(fileURLToPath(new URL('./sqlite-worker.ts', import.meta.url)))});`,
        { eval: true, workerData },
      )
    : new Worker(new URL('./sqlite-worker.js', import.meta.url), { workerData });
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown): void => {
      if (typeof message !== 'object' || message === null) return;
      cleanUp();
      if ('ready' in message) {
        resolve(worker);
      } else {
        void worker.terminate();
        const reason = 'failed' in message ? String(message.failed) : 'no answer';
        reject(new Error(`cannot open the order store at ${workerData.path}: ${reason}`));
      }
    };
    const onError = (error: Error): void => {
      cleanUp();
      reject(error);
    };
    const cleanUp = (): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
  });
}

/**
 * lockDataDir claims `dir` for this process with a pid file, and resolves with the function
 * that releases it. A pid file left by a process that is no longer alive (a crash) is taken
 * over; one of a live process fails: two processes must never recover each other's orders.
 */
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'server.pid');
  const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
    throw new Error(`DATA_DIR ${dir} is in use by process ${holder}`);
  }
  const file = await open(path, 'w');
  await file.writeFile(`${process.pid}\n`);
  await file.close();
  return () => rm(path, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return error instanceof Error && 'code' in error && error.code === 'EPERM';
  }
}

function asResult(value: unknown): SqliteResult {
  if (value === null || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map(asRow);
  return asRow(value);
}

function asFlag(result: SqliteResult): boolean {
  if (typeof result !== 'boolean') throw new TypeError('order store: expected a flag');
  return result;
}

function asRows(result: SqliteResult): RunRow[] {
  if (!Array.isArray(result)) throw new TypeError('order store: expected rows');
  return result;
}

function optionalRun(result: SqliteResult): OrderRun | undefined {
  return result === null ? undefined : decodeRun(asRow(result));
}

function asRow(value: unknown): RunRow {
  if (!isRunRow(value)) throw new TypeError('order store: expected a run');
  return value;
}

function isRunRow(value: unknown): value is RunRow {
  return (
    typeof value === 'object' &&
    value !== null &&
    'run_id' in value &&
    typeof value.run_id === 'string' &&
    'order_id' in value &&
    typeof value.order_id === 'string'
  );
}
