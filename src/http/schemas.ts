import { Type, type Static } from '@sinclair/typebox';
import { stepNames, type StepName } from '../order/order.js';

/** The longest `order_id` accepted, in characters. */
export const maxOrderIdLength = 128;
/** The longest per-step delay accepted, in milliseconds. */
export const maxDelayMs = 60_000;

const stepName = Type.Unsafe<StepName>({ type: 'string', enum: [...stepNames] });
const delay = Type.Integer({ minimum: 0, maximum: maxDelayMs });
const failingAttempts = Type.Integer({ minimum: 0, maximum: 1000 });

/** OrderBody is the JSON body of `POST /order`. Unknown fields are rejected. */
export const OrderBody = Type.Object(
  {
    order_id: Type.String({
      minLength: 1,
      maxLength: maxOrderIdLength,
      // No C0 or C1 control characters: an order id ends up in logs and headers.
      pattern: '^[^\\u0000-\\u001F\\u007F-\\u009F]+$',
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
  },
  { additionalProperties: false },
);
export type OrderBody = Static<typeof OrderBody>;

const StepResponse = Type.Object({
  name: Type.String(),
  status: Type.String(),
  duration_ms: Type.Number(),
  detail: Type.Optional(Type.String()),
  /** For a failed order: `compensated`, `compensation_failed`, `not_needed` or `pending`. */
  compensation: Type.Optional(Type.String()),
});

/**
 * OrderResponse is every response body of the service: an order's outcome, or an error
 * that stopped the request before an order ran (then without `order_id` and `steps`).
 */
export const OrderResponse = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('error')]),
  order_id: Type.Optional(Type.String()),
  steps: Type.Optional(Type.Array(StepResponse)),
  error: Type.Optional(Type.Object({ kind: Type.String(), message: Type.String() })),
});
export type OrderResponse = Static<typeof OrderResponse>;
