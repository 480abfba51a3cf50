import type { SqliteResult } from './sqlite-ops.js';
import { asResult } from './sqlite-result.js';
import type { SqliteTransport } from './sqlite-transport.js';
import { startStoreThread, stopStoreThread } from './store-thread.js';

/**
 * openWriterThreadTransport opens the connection to the database file `path` on a thread of
 * its own (`synchronous` FULL: each commit waits for the disk, never on the event loop), and
 * sends it each batch as one string: the thread boundary copies it whole, where a structured
 * clone of the batch would walk every object of every order. A batch the thread cannot run
 * rejects with its error. If the thread dies, every batch in flight and every later one
 * rejects, and `failure` says why. Rejects if the database cannot be opened (no thread is
 * left running).
 */
export async function openWriterThreadTransport(path: string): Promise<SqliteTransport> {
  const worker = await startStoreThread({ path, sync: 'full', role: 'writer' });
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
    close: () => stopStoreThread(worker),
  };
}
