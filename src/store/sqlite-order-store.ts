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
import { decodeRun, type RunRow } from './run-codec.js';
import type { SqliteOp, SqliteResult } from './sqlite-ops.js';

/** What a commit survives: `normal`, a crash of the process; `full`, also of the machine. */
export type SqliteSync = 'normal' | 'full';

export interface SqliteStoreOptions {
  /** Directory of the database (`orders.sqlite`, its write-ahead log, `server.pid`). */
  readonly dataDir: string;
  readonly sync: SqliteSync;
}

/**
 * openSqliteOrderStore opens (creating if needed) the embedded store in `dataDir`, on a
 * worker thread of its own, and migrates it. The store belongs to one process: the
 * directory is locked by a pid file, and opening a directory that a live process holds
 * fails. Rejects with the reason if the directory or the database cannot be opened.
 */
export async function openSqliteOrderStore(options: SqliteStoreOptions): Promise<SqliteOrderStore> {
  await mkdir(options.dataDir, { recursive: true });
  const unlock = await lockDataDir(options.dataDir);
  try {
    const worker = await startWorker(join(options.dataDir, 'orders.sqlite'), options.sync);
    return new SqliteOrderStore(worker, unlock);
  } catch (error) {
    await unlock();
    throw error;
  }
}

/**
 * SqliteOrderStore is the embedded default {@link OrderStore}: SQLite (better-sqlite3) in
 * write-ahead-log mode, on a worker thread. Every call of one event-loop turn, and every
 * call made while a batch commits, is committed in one transaction (see
 * {@link GroupCommit}); a call resolves once its batch is committed. The event loop only
 * posts batches and reads answers: a slow disk, a checkpoint or another process holding the
 * database lock delays commits, never requests.
 *
 * If the worker dies, every call in flight and every later call rejects with its error.
 */
export class SqliteOrderStore implements OrderStore {
  readonly shared = false;
  readonly #worker: Worker;
  readonly #unlock: () => Promise<void>;
  readonly #commits: GroupCommit<SqliteOp, SqliteResult>;
  readonly #inFlight = new Map<
    number,
    { resolve: (r: SqliteResult[]) => void; reject: (e: unknown) => void }
  >();
  #nextId = 0;
  #failure: Error | undefined;
  #closing: Promise<void> | undefined;

  constructor(worker: Worker, unlock: () => Promise<void>) {
    this.#worker = worker;
    this.#unlock = unlock;
    this.#commits = new GroupCommit((ops) => this.#send(ops));
    worker.on('message', (message: unknown) => {
      this.#receive(message);
    });
    worker.on('error', (error) => {
      this.#fail(error);
    });
    worker.on('exit', () => {
      this.#fail(new Error('the order store thread exited'));
    });
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
    if (this.#failure === undefined) {
      const exited = new Promise<void>((resolve) =>
        this.#worker.once('exit', () => {
          resolve();
        }),
      );
      this.#worker.postMessage({ close: true });
      await exited;
    }
    this.#failure ??= new Error('the order store is closed');
    await this.#unlock();
  }

  #run(op: SqliteOp): Promise<SqliteResult> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return this.#commits.run(op);
  }

  #send(ops: SqliteOp[]): Promise<SqliteResult[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      this.#inFlight.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ops });
    });
  }

  #receive(message: unknown): void {
    if (typeof message !== 'object' || message === null || !('id' in message)) return;
    const waiting = this.#inFlight.get(Number(message.id));
    if (waiting === undefined) return;
    this.#inFlight.delete(Number(message.id));
    if ('results' in message && Array.isArray(message.results)) {
      waiting.resolve(message.results.map(asResult));
    } else {
      const reason = 'error' in message ? String(message.error) : 'malformed answer';
      waiting.reject(new Error(`order store: ${reason}`));
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiting of this.#inFlight.values()) waiting.reject(this.#failure);
    this.#inFlight.clear();
  }
}

/** startWorker starts the database thread and resolves once the database is ready. */
function startWorker(path: string, sync: SqliteSync): Promise<Worker> {
  // From the build the thread runs the compiled file; from the sources (tests, development)
  // it runs the TypeScript file through tsx's require hook, which worker threads accept on
  // every supported Node (its ESM loader they do not on Node 20).
  const fromSources = import.meta.url.endsWith('.ts');
  const workerData = { path, sync };
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
        reject(new Error(`cannot open the order store at ${path}: ${reason}`));
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
