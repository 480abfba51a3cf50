import type { OrderRun } from '../ledger/order-store.js';
import { decodeRun, type RunRow } from './run-codec.js';
import type { SqliteResult } from './sqlite-ops.js';

/**
 * The readers of a {@link SqliteResult}: each narrows the result of one call to what that call
 * answers, and throws a TypeError naming what it expected if the result is not that (a bug or
 * a corrupted answer of a store thread, never a state of the data).
 */

/** asResult narrows one result as it arrives from a store thread. */
export function asResult(value: unknown): SqliteResult {
  if (value === null || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map(asRow);
  return asRow(value);
}

/** asFlag reads the flag of begin, restart, finish or settleFlag. */
export function asFlag(result: SqliteResult): boolean {
  if (typeof result !== 'boolean') throw new TypeError('order store: expected a flag');
  return result;
}

/** asRows reads the rows of a claim or a list. */
export function asRows(result: SqliteResult): RunRow[] {
  if (!Array.isArray(result)) throw new TypeError('order store: expected rows');
  return result;
}

/** optionalRun reads the run of a read: undefined if there is none. */
export function optionalRun(result: SqliteResult): OrderRun | undefined {
  return result === null ? undefined : decodeRun(asRow(result));
}

/** asRow reads one run's row (the holder of a key that begin found taken, or a read's). */
export function asRow(value: unknown): RunRow {
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
