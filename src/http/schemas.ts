import { Type, TypeRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { compensationStatuses, recordedStepStatuses, runStates } from '../ledger/order-store.js';
import { errorKinds } from '../order/errors.js';
import { stepNames, type StepName } from '../order/order.js';
import { httpErrorKinds } from './error-catalogue.js';

/** The longest `order_id` accepted, in characters. */
export const maxOrderIdLength = 128;
/** C0 and C1 control characters, as a regular expression's character range. */
const controlCharacterRange = '\\u0000-\\u001F\\u007F-\\u009F';
/** Finds a control character: none may be in an order id (it ends up in logs and headers). */
export const controlCharacters = new RegExp(`[${controlCharacterRange}]`);
/** The longest per-step delay accepted, in milliseconds. */
export const maxDelayMs = 60_000;

const stepName = Type.Unsafe<StepName>({ type: 'string', enum: [...stepNames] });
const delay = Type.Integer({ minimum: 0, maximum: maxDelayMs });
const failingAttempts = Type.Integer({ minimum: 0, maximum: 1000 });

/** How deep `details` may nest, and how many members an object or array of it may have. */
export const maxDetailsDepth = 4;
export const maxDetailsMembers = 32;

/**
 * jsonValue is a JSON value nested at most `depth` objects or arrays deep, each of at most
 * {@link maxDetailsMembers} members, strings of at most 1024 characters.
 */
function jsonValue(depth: number): TSchema {
  const scalars = [Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean(), Type.Null()];
  if (depth === 0) return Type.Union(scalars);
  const inner = jsonValue(depth - 1);
  return Type.Union([
    ...scalars,
    Type.Array(inner, { maxItems: maxDetailsMembers }),
    Type.Record(Type.String({ maxLength: 128 }), inner, { maxProperties: maxDetailsMembers }),
  ]);
}

/** OrderBody is the JSON body of `POST /order`. Unknown fields are rejected. */
export const OrderBody = Type.Object(
  {
    order_id: Type.String({
      minLength: 1,
      maxLength: maxOrderIdLength,
      // No C0 or C1 control characters: an order id ends up in logs and headers.
      pattern: `^[^${controlCharacterRange}]+$`,
    }),
    amount: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    fail_step: Type.Optional(stepName),
    delay_ms: Type.Optional(
      Type.Object(
        {
          payment: Type.Optional(delay),
          vendor: Type.Optional(delay),
          courier: Type.Optional(delay),
        },
        { additionalProperties: false },
      ),
    ),
    /** Makes the named steps' compensations fail their first N attempts (tests, demos). */
    fail_compensation: Type.Optional(
      Type.Object(
        {
          payment: Type.Optional(failingAttempts),
          vendor: Type.Optional(failingAttempts),
          courier: Type.Optional(failingAttempts),
        },
        { additionalProperties: false },
      ),
    ),
    /** What upstreams need beyond id and amount, passed to their request bodies. */
    details: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), jsonValue(maxDetailsDepth - 1), {
        maxProperties: maxDetailsMembers,
      }),
    ),
  },
  { additionalProperties: false },
);
export type OrderBody = Static<typeof OrderBody>;

/** The longest `Idempotency-Key` accepted, in characters (without its quotes). */
export const maxIdempotencyKeyLength = 255;

/**
 * The headers of `POST /order` that the service reads. `Idempotency-Key` is a string of
 * visible ASCII characters, bare or as a Structured Field string in double quotes (without
 * escapes), as the IETF draft "The Idempotency-Key HTTP Header Field" writes it.
 */
export const OrderHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      description:
        'Makes the request safe to repeat: a repeat with the same key and body is answered ' +
        'from the record of the first, a repeat with another body is 422.',
      pattern: `^(?:"[\\x20\\x21\\x23-\\x5B\\x5D-\\x7E]{1,${maxIdempotencyKeyLength}}"|[\\x21\\x23-\\x7E]{1,${maxIdempotencyKeyLength}})$`,
    }),
  ),
});
export type OrderHeaders = Static<typeof OrderHeaders>;

/**
 * StepResponse is one step of an answer. `duration_ms` is whole milliseconds, truncated, as
 * the original service reports it.
 */
const StepResponse = Type.Object({
  name: Type.String(),
  status: literals(recordedStepStatuses),
  duration_ms: Type.Integer(),
  detail: Type.Optional(literals(errorKinds)),
  /** For a failed order: where the undoing of the step stood when the order was answered. */
  compensation: Type.Optional(literals(compensationStatuses)),
});

/**
 * OrderResponse is every response body of the service: an order's outcome, or an error
 * that stopped the request before an order ran (then without `steps`, and without
 * `order_id` when the request had none).
 */
export const OrderResponse = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('error')]),
  order_id: Type.Optional(Type.String()),
  steps: Type.Optional(Type.Array(StepResponse)),
  error: Type.Optional(Type.Object({ kind: literals(httpErrorKinds), message: Type.String() })),
});
export type OrderResponse = Static<typeof OrderResponse>;

const RecordedStepResponse = Type.Object({
  name: Type.String(),
  status: literals([...recordedStepStatuses, 'running']),
  duration_ms: Type.Integer(),
  detail: Type.Optional(literals(errorKinds)),
  compensation: literals(compensationStatuses),
  compensation_attempts: Type.Integer(),
  compensation_error: Type.Optional(Type.String()),
  next_compensation_at: Type.Optional(Type.String()),
  needs_operator: Type.Boolean(),
});

/** RecordedOrder is the body of `GET /order/:order_id`: the most recent run of the order. */
export const RecordedOrder = Type.Object({
  order_id: Type.String(),
  run_id: Type.String(),
  idempotency_key: Type.Optional(Type.String()),
  state: literals(runStates),
  status: literals(['running', 'ok', 'error']),
  attempt: Type.Integer(),
  error: Type.Optional(Type.Object({ kind: literals(errorKinds), message: Type.String() })),
  needs_operator: Type.Boolean(),
  steps: Type.Array(RecordedStepResponse),
  created_at: Type.String(),
  updated_at: Type.String(),
  finished_at: Type.Optional(Type.String()),
});
export type RecordedOrder = Static<typeof RecordedOrder>;

/**
 * statusBody is the body `{ "status": status }` of an answer with nothing more to say (the
 * health and readiness checks, a settled flag), described for the OpenAPI document.
 */
export function statusBody<const Status extends string>(status: Status, description: string) {
  return Type.Object({ status: literals([status]) }, { description });
}

/**
 * literals is the schema of one of `values`, typed as their union. It is a string `enum`,
 * not a union of constants: the serializer writes an `enum` as a plain string, where it
 * would try each branch of a union in turn for every value it writes.
 */
export function literals<const Value extends string>(values: readonly Value[]) {
  return Type.Unsafe<Value>({ type: 'string', enum: [...values] });
}

/** The one shape of `Unsafe` schema in this file: a string enum. */
interface StringEnum {
  readonly type?: unknown;
  readonly enum?: readonly unknown[];
}

// TypeBox's own checkers (`TypeCompiler`, `Value`) know no `Unsafe` schema and throw on one.
// The only ones here are string enums ({@link literals}, the step name): they are taught those,
// so that a schema of this file can be checked outside Fastify too (a worker checks the
// dashboard state another sent it). Any other `Unsafe` schema fails the check. The registry
// is TypeBox's own, one per process: a kind registered elsewhere first is left alone.
if (!TypeRegistry.Has('Unsafe')) {
  TypeRegistry.Set<StringEnum>(
    'Unsafe',
    (schema, value) =>
      schema.type === 'string' &&
      typeof value === 'string' &&
      (schema.enum === undefined || schema.enum.includes(value)),
  );
}
