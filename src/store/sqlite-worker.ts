/**
 * A thread of the embedded SQLite store, in one of two roles.
 *
 * - `writer` (with `synchronous` FULL): the thread owns the store's connection and runs its
 *   batches, each in one transaction, so that the flush of each commit to the disk never
 *   blocks the event loop that serves requests. Messages in: `{ id, ops }` (a batch, as
 *   JSON); out: `{ id, results }` or `{ id, error }`.
 * - `checkpointer` (with NORMAL, where the event loop's own connection commits without
 *   flushing): the thread copies the write-ahead log into the database file every
 *   `checkpointMs`, the only part of NORMAL that writes and flushes the database file.
 *
 * Either way: `{ ready: true }` once open, `{ failed: message }` if the database cannot be
 * opened; `{ close: true }` in stops the thread after a last checkpoint.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SqliteExecutor, prepareDatabase, type SqliteOp } from './sqlite-ops.js';
import { messageOf } from '../core/message-of.js';

const port = parentPort;
if (port === null) throw new Error('sqlite-worker runs as a worker thread');

const options: unknown = workerData;
const setting = (name: string): unknown => (isRecord(options) ? options[name] : undefined);
const path = typeof setting('path') === 'string' ? String(setting('path')) : '';
const sync = setting('sync') === 'full' ? 'full' : 'normal';
const role = setting('role') === 'checkpointer' ? 'checkpointer' : 'writer';
const checkpointMs =
  typeof setting('checkpointMs') === 'number' ? Number(setting('checkpointMs')) : 250;

let db: Database.Database | undefined;
let executor: SqliteExecutor | undefined;
let timer: NodeJS.Timeout | undefined;
try {
  db = new Database(path);
  if (role === 'writer') {
    prepareDatabase(db, sync, 'writer-thread');
    executor = new SqliteExecutor(db);
  } else {
    prepareDatabase(db, sync, 'checkpointer');
    const connection = db;
    timer = setInterval(() => {
      // PASSIVE: copies what no reader or writer holds, never waits for them.
      connection.pragma('wal_checkpoint(PASSIVE)');
    }, checkpointMs);
  }
  port.postMessage({ ready: true });
} catch (error) {
  port.postMessage({ failed: messageOf(error) });
}

port.on('message', (message: unknown) => {
  if (!isRecord(message)) return;
  if (message['close'] === true) {
    clearInterval(timer);
    if (role === 'checkpointer') db?.pragma('wal_checkpoint(PASSIVE)');
    db?.close();
    db = undefined;
    executor = undefined;
    port.postMessage({ closed: true });
    port.close();
    return;
  }
  const { id, ops } = message;
  if (typeof id !== 'number' || typeof ops !== 'string') return;
  try {
    if (executor === undefined) throw new Error('the order store is closed');
    // The batch is JSON of the store's own typed calls.
    port.postMessage({ id, results: executor.execute(JSON.parse(ops) as SqliteOp[]) });
  } catch (error) {
    port.postMessage({ id, error: messageOf(error) });
  }
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
