/** The names of the three steps of an order, in registration order. */
export const stepNames = ['payment', 'vendor', 'courier'] as const;

export type StepName = (typeof stepNames)[number];

/**
 * Order is what the pipeline processes: validated at the edge, immutable afterwards.
 */
export interface Order {
  readonly id: string;
  /** Amount in the smallest currency unit; a positive safe integer. */
  readonly amount: number;
  /** Makes the named simulated step fail after its delay (for demonstrations and tests). */
  readonly failStep?: StepName | undefined;
  /** Per-step delay overrides in milliseconds; missing steps use the configured defaults. */
  readonly delayMs?: Readonly<Partial<Record<StepName, number>>> | undefined;
  /**
   * Makes the named steps' simulated compensations fail their first N attempts (for
   * demonstrations and tests of retries and operator escalation).
   */
  readonly failCompensation?: Readonly<Partial<Record<StepName, number>>> | undefined;
  /** What upstreams need beyond id and amount: a bounded JSON object, validated at the edge. */
  readonly details?: Readonly<Record<string, unknown>> | undefined;
  /**
   * When the order's deadline passes, in epoch milliseconds, set by the service (never by a
   * client): a step does not start an upstream call that could not finish before it. Not read
   * back from the store: compensations and recovered runs have deadlines of their own.
   */
  readonly deadlineAt?: number | undefined;
}

/**
 * parseOrder rebuilds an order from its JSON form as a store read it back (`JSON.parse` of
 * `JSON.stringify(order)`). It guards against a foreign or damaged record, not against a
 * client: orders are validated at the edge. Throws a TypeError naming what is wrong.
 */
export function parseOrder(value: unknown): Order {
  if (!isRecord(value)) throw new TypeError('recorded order is not an object');
  const { id, amount, failStep, delayMs, failCompensation, details } = value;
  if (typeof id !== 'string') throw new TypeError('recorded order has no id');
  if (typeof amount !== 'number') throw new TypeError('recorded order has no amount');
  if (failStep !== undefined && !isStepName(failStep)) {
    throw new TypeError('recorded order has an unknown failStep');
  }
  if (details !== undefined && !isRecord(details)) {
    throw new TypeError('recorded order has malformed details');
  }
  return {
    id,
    amount,
    failStep,
    delayMs: stepNumbers(delayMs, 'delayMs'),
    failCompensation: stepNumbers(failCompensation, 'failCompensation'),
    ...(details === undefined ? {} : { details }),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStepName(value: unknown): value is StepName {
  return stepNames.some((name) => name === value);
}

function stepNumbers(value: unknown, field: string): Partial<Record<StepName, number>> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) throw new TypeError(`recorded order has a malformed ${field}`);
  const numbers: Partial<Record<StepName, number>> = {};
  for (const [name, number] of Object.entries(value)) {
    if (!isStepName(name) || typeof number !== 'number') {
      throw new TypeError(`recorded order has a malformed ${field}`);
    }
    numbers[name] = number;
  }
  return numbers;
}
