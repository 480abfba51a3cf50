import { Worker } from 'node:worker_threads';
import type { StoreSync } from './store-kinds.js';

/** StoreThreadData tells a thread of the embedded store (`sqlite-worker`) what to open and do. */
export interface StoreThreadData {
  /** The database file. */
  readonly path: string;
  readonly sync: StoreSync;
  /**
   * `writer`: the thread owns the store's connection and runs its batches; `checkpointer`: it
   * copies the write-ahead log into the database file.
   */
  readonly role: 'writer' | 'checkpointer';
}

/**
 * startStoreThread starts a thread of the embedded store and resolves once its connection is
 * open. Rejects if the thread cannot open the database (the thread is then terminated) or
 * fails to start (it has then exited).
 */
export function startStoreThread(data: StoreThreadData): Promise<Worker> {
  const worker = newStoreWorker(data);
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown): void => {
      if (typeof message !== 'object' || message === null) return;
      cleanUp();
      if ('ready' in message) {
        resolve(worker);
      } else {
        void worker.terminate();
        const reason = 'failed' in message ? String(message.failed) : 'no answer';
        reject(new Error(`cannot open the order store at ${data.path}: ${reason}`));
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
 * stopStoreThread asks a store thread to close its connection (after a last checkpoint) and
 * resolves once the thread exited.
 */
export async function stopStoreThread(worker: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', () => {
      resolve();
    });
  });
  worker.postMessage({ close: true });
  await exited;
}

function newStoreWorker(workerData: StoreThreadData): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./sqlite-worker.js', import.meta.url), { workerData });
  }
  // From the sources (tests, development) the thread runs the TypeScript file through tsx.
  // Not with `--import tsx` in its execArgv: on Node 20 a worker thread's module loader takes
  // no hooks from there, so a JavaScript entry registers tsx in the thread, then imports it.
  return new Worker(new URL('./tsx-thread-entry.mjs', import.meta.url), {
    workerData,
    argv: [new URL('./sqlite-worker.ts', import.meta.url).href],
  });
}
