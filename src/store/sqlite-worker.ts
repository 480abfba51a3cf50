/**
 * The thread that owns the embedded SQLite database: it runs the store's batches, each in
 * one transaction, so that neither a commit's flush to the disk nor a lock held by another
 * process ever blocks the event loop that serves requests.
 *
 * Messages in: `{ id, ops }` (a batch) or `{ close: true }`. Messages out: `{ ready: true }`
 * once the database is open and migrated, `{ id, results }` or `{ id, error }` per batch,
 * `{ failed: message }` if the database cannot be opened, `{ closed: true }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SqliteExecutor, prepareDatabase, type SqliteOp } from './sqlite-ops.js';

const port = parentPort;
if (port === null) throw new Error('sqlite-worker runs as a worker thread');

const options: unknown = workerData;
const path = isRecord(options) && typeof options['path'] === 'string' ? options['path'] : '';
const sync = isRecord(options) && options['sync'] === 'full' ? 'full' : 'normal';

let executor: SqliteExecutor | undefined;
try {
  const db = new Database(path);
  prepareDatabase(db, sync);
  executor = new SqliteExecutor(db);
  port.postMessage({ ready: true });
} catch (error) {
  port.postMessage({ failed: error instanceof Error ? error.message : String(error) });
}

port.on('message', (message: unknown) => {
  if (!isRecord(message)) return;
  if (message['close'] === true) {
    executor?.close();
    executor = undefined;
    port.postMessage({ closed: true });
    port.close();
    return;
  }
  const { id, ops } = message;
  if (typeof id !== 'number' || !Array.isArray(ops)) return;
  try {
    if (executor === undefined) throw new Error('the order store is closed');
    // The batch was built by the store from its own typed calls.
    port.postMessage({ id, results: executor.execute(ops as SqliteOp[]) });
  } catch (error) {
    port.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
