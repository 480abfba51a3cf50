import type { Cancellation } from '../core/cancellation.js';
import type { Pool } from '../core/semaphore.js';
import { sleep } from '../core/sleep.js';
import { OrderError, kindMessage } from './errors.js';
import type { Order, StepName } from './order.js';
import type { Step } from './step.js';

/** Default delays of the simulated steps, in milliseconds. */
export const defaultStepDelays: Readonly<Record<StepName, number>> = {
  payment: 150,
  vendor: 200,
  courier: 100,
};

/** Default delays of the simulated compensations, in milliseconds. */
export const defaultCompensationDelays: Readonly<Record<StepName, number>> = {
  payment: 40,
  vendor: 20,
  courier: 10,
};

export interface SimulatedStepsOptions {
  /** Bounds courier assignment: a courier step holds one slot during its delay. */
  courierPool: Pool;
  /** Delays used when an order does not override them. */
  delays?: Readonly<Record<StepName, number>>;
  /** Delays of the compensations. */
  compensationDelays?: Readonly<Record<StepName, number>>;
}

/**
 * simulatedSteps builds the three steps of an order — payment, vendor notification,
 * courier assignment — as stand-ins for real upstreams. Each waits for its delay (the
 * order's `delayMs`, else the default; 0 means no wait), abortably, then fails with its
 * kind if the order's `failStep` names it. The courier step first acquires a slot of the
 * courier pool and holds it until it settles; its wait for the slot counts in its duration.
 *
 * Each step also compensates (refund the payment, retract the vendor notification, release
 * the courier assignment): it waits for its compensation delay, abortably, then fails with
 * `internal` while `attempt` is within the order's `failCompensation` count for that step.
 * Like a real refund keyed by order id, a compensation is idempotent.
 */
export function simulatedSteps(options: SimulatedStepsOptions): Step<Order>[] {
  const delays = options.delays ?? defaultStepDelays;
  const { courierPool } = options;
  const undo = (name: StepName, what: string) => ({
    compensate: async (order: Order, cancel: Cancellation, attempt: number): Promise<void> => {
      await pause(options.compensationDelays?.[name] ?? defaultCompensationDelays[name], cancel);
      if (attempt <= (order.failCompensation?.[name] ?? 0)) {
        throw new OrderError('internal', `${what} failed (attempt ${attempt})`);
      }
    },
  });
  return [
    {
      name: 'payment',
      ...undo('payment', 'refunding the payment'),
      run: async (order, cancel) => {
        await pause(order.delayMs?.payment ?? delays.payment, cancel);
        if (order.failStep === 'payment') {
          throw new OrderError('payment_declined', kindMessage('payment_declined'));
        }
      },
    },
    {
      name: 'vendor',
      ...undo('vendor', 'retracting the vendor notification'),
      run: async (order, cancel) => {
        await pause(order.delayMs?.vendor ?? delays.vendor, cancel);
        if (order.failStep === 'vendor') {
          throw new OrderError('vendor_unavailable', kindMessage('vendor_unavailable'));
        }
      },
    },
    {
      name: 'courier',
      ...undo('courier', 'releasing the courier assignment'),
      run: async (order, cancel) => {
        const permit = await courierPool.acquire(cancel);
        try {
          await pause(order.delayMs?.courier ?? delays.courier, cancel);
          if (order.failStep === 'courier') {
            throw new OrderError('no_courier', kindMessage('no_courier'));
          }
        } finally {
          permit.release();
        }
      },
    },
  ];
}

/** pause waits `ms` abortably; 0 skips the timer and only checks for an abort. */
function pause(ms: number, cancel: Cancellation): Promise<void> | undefined {
  if (ms > 0) return sleep(ms, cancel);
  cancel.throwIfAborted();
  return undefined;
}
