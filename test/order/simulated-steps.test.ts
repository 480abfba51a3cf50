import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { Semaphore, type Permit } from '../../src/core/semaphore.js';
import { OrderError, type ErrorKind } from '../../src/order/errors.js';
import type { Order, StepName } from '../../src/order/order.js';
import { Pipeline } from '../../src/order/pipeline.js';
import { defaultStepDelays, simulatedSteps } from '../../src/order/simulated-steps.js';
import type { Step } from '../../src/order/step.js';
import { flushMicrotasks, promiseState, runWithDeadline } from '../helpers.js';

function stepsWithPool(size = 5): { steps: Record<StepName, Step<Order>>; pool: Semaphore } {
  const pool = new Semaphore(size);
  const [payment, vendor, courier] = simulatedSteps({ courierPool: pool });
  return { steps: { payment: payment!, vendor: vendor!, courier: courier! }, pool };
}

// Each step's failure and the message a client reads for it (the README shows the first two).
const steps: { name: StepName; kind: ErrorKind; message: string }[] = [
  { name: 'payment', kind: 'payment_declined', message: 'payment was declined' },
  { name: 'vendor', kind: 'vendor_unavailable', message: 'vendor is unavailable' },
  { name: 'courier', kind: 'no_courier', message: 'no courier is available' },
];

/** A pipeline of the simulated steps whose one-slot courier pool is held by `holder`. */
async function pipelineWithFullCourierPool(): Promise<{
  pipeline: Pipeline<Order>;
  pool: Semaphore;
  holder: Permit;
}> {
  const pool = new Semaphore(1);
  const pipeline = new Pipeline(simulatedSteps({ courierPool: pool }), { now: () => Date.now() });
  return { pipeline, pool, holder: await pool.acquire() };
}

describe('simulated steps', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('are payment, vendor and courier, in that order, with default delays 150, 200, 100 ms', () => {
    expect(simulatedSteps({ courierPool: new Semaphore(1) }).map((step) => step.name)).toEqual([
      'payment',
      'vendor',
      'courier',
    ]);
    expect(defaultStepDelays).toEqual({ payment: 150, vendor: 200, courier: 100 });
  });

  describe.each(steps)('$name', ({ name, kind, message }) => {
    const delay = defaultStepDelays[name];

    it(`succeeds after its default delay and leaves no timer, listener or permit`, async () => {
      const { steps: byName, pool } = stepsWithPool();
      const cancel = new CancelSource();
      const run = byName[name].run({ id: 'o1', amount: 100 }, cancel);
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(await promiseState(run), `state at ${delay - 1} ms`).toBe('pending');
      await vi.advanceTimersByTimeAsync(1);
      expect(await promiseState(run), `state at ${delay} ms`).toBe('fulfilled');
      expect(vi.getTimerCount(), 'timers left').toBe(0);
      expect(cancel.listenerCount, 'listeners left').toBe(0);
      expect(pool.inUse, 'pool in use').toBe(0);
    });

    it(`fails with kind ${kind} and its message when fail_step names it, after its delay_ms`, async () => {
      const { steps: byName, pool } = stepsWithPool();
      const order: Order = { id: 'o1', amount: 100, failStep: name, delayMs: { [name]: 30 } };
      const run = byName[name].run(order, new CancelSource());
      await vi.advanceTimersByTimeAsync(29);
      expect(await promiseState(run), 'state at 29 ms').toBe('pending');
      await vi.advanceTimersByTimeAsync(1);
      await expect(run, 'rejection').rejects.toThrow(OrderError);
      await expect(run, 'rejection').rejects.toMatchObject({ kind, message });
      expect(pool.inUse, 'pool in use').toBe(0);
    });

    it('does not fail when fail_step names another step', async () => {
      const { steps: byName } = stepsWithPool();
      const other = steps.find((step) => step.name !== name)!.name;
      const run = byName[name].run(
        { id: 'o1', amount: 100, failStep: other, delayMs: { [name]: 0 } },
        new CancelSource(),
      );
      expect(await promiseState(run)).toBe('fulfilled');
    });

    it('an abort during its delay rejects with the reason at once and clears the timer', async () => {
      const { steps: byName, pool } = stepsWithPool();
      const cancel = new CancelSource();
      const run = byName[name].run({ id: 'o1', amount: 100 }, cancel);
      await vi.advanceTimersByTimeAsync(delay / 2);
      expect(vi.getTimerCount(), 'timers while waiting').toBe(1);
      const reason = new OrderError('canceled', 'client went away');
      cancel.abort(reason);
      expect(await promiseState(run), 'state right after the abort').toBe('rejected');
      await expect(run, 'rejection').rejects.toBe(reason);
      expect(vi.getTimerCount(), 'timers after abort').toBe(0);
      expect(pool.inUse, 'pool in use after abort').toBe(0);
    });

    it('delay 0 runs with no timer', async () => {
      const { steps: byName, pool } = stepsWithPool();
      const run = byName[name].run(
        { id: 'o1', amount: 100, delayMs: { [name]: 0 } },
        new CancelSource(),
      );
      expect(vi.getTimerCount(), 'timers started').toBe(0);
      expect(await promiseState(run), 'state without advancing time').toBe('fulfilled');
      expect(pool.inUse, 'pool in use').toBe(0);
    });

    it('delay 0 with an aborted order rejects with the reason', async () => {
      const { steps: byName } = stepsWithPool();
      const cancel = new CancelSource();
      cancel.abort('gone');
      const run = byName[name].run({ id: 'o1', amount: 100, delayMs: { [name]: 0 } }, cancel);
      await expect(run).rejects.toBe('gone');
    });
  });

  describe('courier', () => {
    it('holds a pool slot during its delay and gives it back', async () => {
      const { steps: byName, pool } = stepsWithPool(1);
      const run = byName.courier.run({ id: 'o1', amount: 1 }, new CancelSource());
      await flushMicrotasks();
      expect(pool.inUse, 'pool in use during the delay').toBe(1);
      await vi.advanceTimersByTimeAsync(100);
      expect(await promiseState(run)).toBe('fulfilled');
      expect(pool.inUse, 'pool in use after').toBe(0);
    });

    it('an abort while waiting for a slot leaves the queue, never takes the slot, and starts no timer', async () => {
      const { steps: byName, pool } = stepsWithPool(1);
      const holder = await pool.acquire();
      const cancel = new CancelSource();
      const run = byName.courier.run({ id: 'o1', amount: 1 }, cancel);
      await flushMicrotasks();
      expect(pool.waiting, 'waiting before abort').toBe(1);
      const reason = new OrderError('timeout', 'deadline');
      cancel.abort(reason);
      expect(pool.waiting, 'waiting right after abort').toBe(0);
      expect(await promiseState(run), 'state right after the abort').toBe('rejected');
      await expect(run, 'rejection').rejects.toBe(reason);
      holder.release();
      expect(pool.inUse, 'pool in use after the holder left').toBe(0);
      expect(vi.getTimerCount(), 'timers').toBe(0);
      await vi.advanceTimersByTimeAsync(1000);
      expect(pool.inUse, 'pool in use later').toBe(0);
    });

    it('its wait for a slot counts in its duration', async () => {
      const { pipeline, pool, holder } = await pipelineWithFullCourierPool();
      const run = pipeline.run({ id: 'o1', amount: 1 });
      await vi.advanceTimersByTimeAsync(300);
      holder.release(); // the courier gets its slot at 300 ms, then waits its 100 ms
      await vi.advanceTimersByTimeAsync(100);
      const result = await run;
      expect(result.status).toBe('ok');
      expect(
        result.steps.map(({ name, durationMs }) => [name, durationMs]),
        'durations',
      ).toEqual([
        ['payment', 150],
        ['vendor', 200],
        ['courier', 400],
      ]);
      expect(pool.inUse, 'pool in use after').toBe(0);
    });

    it('an order whose courier waits for a slot past the deadline times out and frees nothing it did not take', async () => {
      const { pipeline, pool, holder } = await pipelineWithFullCourierPool();
      const run = runWithDeadline(pipeline, { id: 'o1', amount: 1 }, 250);
      await vi.advanceTimersByTimeAsync(250);
      const result = await run;
      expect(result.error?.kind, 'kind').toBe('timeout');
      expect(result.steps.map((step) => step.status)).toEqual(['ok', 'ok', 'canceled']);
      expect(pool.waiting, 'waiting').toBe(0);
      expect(pool.inUse, 'pool in use (the holder only)').toBe(1);
      holder.release();
      expect(pool.inUse, 'pool in use after the holder left').toBe(0);
    });
  });
});
