import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { isAttention, nextCompensationAt } from '../ledger/compensation-rules.js';
import {
  compensationStatuses,
  recordedStepStatuses,
  type Compensation,
  type OrderRun,
  type RecordedOutcome,
} from '../ledger/order-store.js';
import { errorKinds } from '../order/errors.js';
import { parseOrder } from '../order/order.js';

/**
 * RunRow is a run as the SQL stores keep it: one row, with the order, the outcome and the
 * compensations as JSON (text in SQLite, parsed `jsonb` from PostgreSQL) and times as
 * integers (numbers, or strings from PostgreSQL's `bigint`).
 */
export interface RunRow {
  readonly run_id: string;
  readonly order_id: string;
  readonly idempotency_key: string | null;
  readonly fingerprint: string | null;
  readonly order_json: unknown;
  readonly state: string;
  readonly attempt: number;
  readonly owner: string | null;
  readonly lease_until: number | string | null;
  readonly error_kind: string | null;
  readonly outcome: unknown;
  readonly compensations: unknown;
  readonly created_at: number | string;
  readonly updated_at: number | string;
  readonly finished_at: number | string | null;
}

/** The columns of a {@link RunRow}, for SELECT lists. */
export const runColumns = `run_id, order_id, idempotency_key, fingerprint, order_json, state,
  attempt, owner, lease_until, error_kind, outcome, compensations, created_at, updated_at,
  finished_at`;

function literals<const Value extends string>(values: readonly Value[]) {
  return Type.Union(values.map((value) => Type.Literal(value)));
}

const RecordedOutcomeSchema = Type.Object({
  status: literals(['ok', 'error']),
  steps: Type.Array(
    Type.Object({
      name: Type.String(),
      status: literals(recordedStepStatuses),
      durationMs: Type.Number(),
      detail: Type.Optional(literals(errorKinds)),
      compensation: Type.Optional(literals(compensationStatuses)),
    }),
  ),
  error: Type.Optional(Type.Object({ kind: literals(errorKinds), message: Type.String() })),
});

const CompensationsSchema = Type.Array(
  Type.Object({
    name: Type.String(),
    status: literals(compensationStatuses),
    attempts: Type.Integer(),
    nextAttemptAt: Type.Optional(Type.Number()),
    lastError: Type.Optional(Type.String()),
    needsOperator: Type.Boolean(),
  }),
);

/**
 * decodeRun turns a row read back from a SQL store into an {@link OrderRun}. Throws a
 * TypeError if the row is damaged (a JSON column that is not what the store wrote).
 */
export function decodeRun(row: RunRow): OrderRun {
  // The schemas' static types are the ledger's own: a mismatch would not compile here.
  const outcome: RecordedOutcome | undefined =
    row.outcome === null ? undefined : checked(RecordedOutcomeSchema, json(row.outcome), 'outcome');
  const compensations = decodeCompensations(row.compensations);
  return {
    runId: row.run_id,
    orderId: row.order_id,
    idempotencyKey: row.idempotency_key ?? undefined,
    fingerprint: row.fingerprint ?? undefined,
    order: parseOrder(json(row.order_json)),
    state: row.state === 'running' ? 'running' : 'finished',
    attempt: row.attempt,
    owner: row.owner ?? undefined,
    leaseUntil: optionalNumber(row.lease_until),
    outcome,
    compensations,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    finishedAt: optionalNumber(row.finished_at),
  };
}

/**
 * decodeCompensations reads a run's compensations column (JSON text or parsed). Throws a
 * TypeError if it is damaged.
 */
export function decodeCompensations(value: unknown): readonly Compensation[] {
  return checked(CompensationsSchema, json(value), 'compensations');
}

/** The derived columns a store keeps beside a run's compensations, for its indexes. */
export interface CompensationColumns {
  /** When the next claimable attempt is due; null if none. */
  readonly next_compensation_at: number | null;
  /** 1 while a compensation is open or flagged: the run needs watching. */
  readonly attention: 0 | 1;
}

/** compensationColumns derives the indexed columns of `compensations`. */
export function compensationColumns(compensations: readonly Compensation[]): CompensationColumns {
  return {
    next_compensation_at: nextCompensationAt(compensations) ?? null,
    attention: isAttention(compensations) ? 1 : 0,
  };
}

function json(value: unknown): unknown {
  return typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
}

function checked<Schema extends TSchema>(
  schema: Schema,
  value: unknown,
  what: string,
): Static<Schema> {
  if (!Value.Check(schema, value)) throw new TypeError(`recorded ${what} is damaged`);
  return value;
}

function optionalNumber(value: number | string | null): number | undefined {
  return value === null ? undefined : Number(value);
}
