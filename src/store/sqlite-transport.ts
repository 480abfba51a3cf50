import type { SqliteOp, SqliteResult } from './sqlite-ops.js';

/**
 * SqliteTransport runs the embedded store's batches where its connection lives: on the event
 * loop's thread (`openInThreadTransport`) or on a thread of its own (`openWriterThreadTransport`).
 */
export interface SqliteTransport {
  /** execute runs `ops` in one transaction; rejects (or throws) if it cannot, with nothing applied. */
  execute(ops: SqliteOp[]): Promise<SqliteResult[]> | SqliteResult[];
  /** failure is set once the transport can run nothing more (its thread died). */
  readonly failure: Error | undefined;
  /** close closes the connection and stops the transport's thread; resolves once it exited. */
  close(): Promise<void>;
}
