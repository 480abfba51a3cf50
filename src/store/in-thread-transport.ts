import type { Worker } from 'node:worker_threads';
import {
  SqliteExecutor,
  isBusy,
  prepareDatabase,
  type SqliteOp,
  type SqliteResult,
} from './sqlite-ops.js';
import type { SqliteTransport } from './sqlite-transport.js';
import { startStoreThread, stopStoreThread } from './store-thread.js';

/** How long a batch that finds the database locked is retried before it fails. */
const lockedForMs = 30_000;

/**
 * openInThreadTransport opens the connection to the database file `path` on the event loop's
 * thread (`synchronous` NORMAL: a commit appends to the log without flushing it), and a
 * checkpointer thread that does the flushing part. A batch that finds the database locked by
 * another process is retried every few milliseconds (at most 10) (the event loop serves
 * requests meanwhile), for up to {@link lockedForMs}, then rejects with SQLite's error.
 * Rejects if the database cannot be opened, leaving no connection and no thread behind.
 */
export async function openInThreadTransport(path: string): Promise<SqliteTransport> {
  // Imported when used: better-sqlite3 is an optional peer dependency of the package.
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(path);
  let checkpointer: Worker;
  try {
    prepareDatabase(db, 'normal', 'in-thread');
    checkpointer = await startStoreThread({ path, sync: 'normal', role: 'checkpointer' });
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
      await stopStoreThread(checkpointer);
      db.close();
    },
  };
}
