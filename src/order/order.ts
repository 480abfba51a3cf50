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
}
