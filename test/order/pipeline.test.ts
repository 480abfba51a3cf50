import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CancelSource, type Cancellation } from '../../src/core/cancellation.js';
import { sleep } from '../../src/core/sleep.js';
import { Tracker } from '../../src/core/tracker.js';
import { OrderError } from '../../src/order/errors.js';
import { Pipeline } from '../../src/order/pipeline.js';
import type { Step } from '../../src/order/step.js';
import { deferred, flushMicrotasks, runWithDeadline, type Deferred } from '../helpers.js';

type TestOrder = Record<string, never>;
const order: TestOrder = {};

/**
 * A step the test finishes by hand: it settles when `finish` does, or rejects with the
 * cancellation's reason as soon as the order aborts (unless it ignores the abort).
 */
interface ControlledStep {
  step: Step<TestOrder>;
  finish: Deferred<void>;
}

function controlledStep(name: string, options: { ignoresAbort?: boolean } = {}): ControlledStep {
  const finish = deferred();
  const step: Step<TestOrder> = {
    name,
    run: (_order, cancel: Cancellation) =>
      new Promise<void>((resolve, reject) => {
        const remove = options.ignoresAbort === true ? undefined : cancel.onAbort(reject);
        if (cancel.aborted && options.ignoresAbort !== true) reject(cancel.reason);
        finish.promise.then(
          () => {
            remove?.();
            resolve();
          },
          (error: unknown) => {
            remove?.();
            reject(error);
          },
        );
      }),
  };
  return { step, finish };
}

/** sleepingStep waits `ms` abortably, then fails with `error` if given. */
function sleepingStep(name: string, ms: number, error?: Error): Step<TestOrder> {
  return {
    name,
    run: async (_order, cancel) => {
      await sleep(ms, cancel);
      if (error !== undefined) throw error;
    },
  };
}

describe('Pipeline', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const clock = { now: (): number => Date.now() };

  it('lists results in registration order whatever order the steps finish in', async () => {
    const [a, b, c] = [controlledStep('a'), controlledStep('b'), controlledStep('c')];
    const pipeline = new Pipeline([a.step, b.step, c.step], clock);
    const run = pipeline.run(order);
    for (const [ms, step] of [
      [10, c],
      [10, a],
      [10, b],
    ] as const) {
      await vi.advanceTimersByTimeAsync(ms);
      step.finish.resolve();
    }
    expect(await run).toEqual({
      status: 'ok',
      steps: [
        { name: 'a', status: 'ok', durationMs: 20 },
        { name: 'b', status: 'ok', durationMs: 30 },
        { name: 'c', status: 'ok', durationMs: 10 },
      ],
    });
  });

  it('a failed step is `error` with its kind, siblings are `canceled`, a step done before stays `ok`', async () => {
    const [payment, vendor, courier] = [
      controlledStep('payment'),
      controlledStep('vendor'),
      controlledStep('courier'),
    ];
    const pipeline = new Pipeline([payment.step, vendor.step, courier.step], clock);
    const run = pipeline.run(order);
    await vi.advanceTimersByTimeAsync(10);
    payment.finish.resolve();
    await vi.advanceTimersByTimeAsync(10);
    vendor.finish.reject(new OrderError('vendor_unavailable', 'vendor is unavailable'));
    expect(await run).toEqual({
      status: 'error',
      steps: [
        { name: 'payment', status: 'ok', durationMs: 10 },
        { name: 'vendor', status: 'error', durationMs: 20, detail: 'vendor_unavailable' },
        { name: 'courier', status: 'canceled', durationMs: 20 },
      ],
      error: { kind: 'vendor_unavailable', message: 'vendor is unavailable' },
    });
  });

  it('a deadline on the parent answers `timeout` with every running step canceled and no timer left', async () => {
    const pipeline = new Pipeline(
      [sleepingStep('a', 1000), sleepingStep('b', 2000), sleepingStep('c', 3000)],
      clock,
    );
    const run = runWithDeadline(pipeline, order, 100);
    await vi.advanceTimersByTimeAsync(100);
    const outcome = await run;
    expect(outcome).toEqual({
      status: 'error',
      steps: [
        { name: 'a', status: 'canceled', durationMs: 100 },
        { name: 'b', status: 'canceled', durationMs: 100 },
        { name: 'c', status: 'canceled', durationMs: 100 },
      ],
      error: { kind: 'timeout', message: 'order did not complete within 100 ms' },
    });
    expect(vi.getTimerCount(), 'timers left').toBe(0);
  });

  it.each([
    ['an OrderError canceled', 'canceled', new OrderError('canceled', 'client went away')],
    ['an OrderError timeout', 'timeout', new OrderError('timeout', 'server deadline')],
    ['a DOMException AbortError', 'canceled', new DOMException('aborted', 'AbortError')],
    ['a DOMException TimeoutError', 'timeout', new DOMException('timed out', 'TimeoutError')],
    ['a plain Error', 'internal', new Error('shutting down')],
  ])('a parent abort with %s answers kind %s', async (_, kind, reason) => {
    const parent = new AbortController();
    const pipeline = new Pipeline([sleepingStep('a', 1000), sleepingStep('b', 1000)], clock);
    const run = pipeline.run(order, { parent: parent.signal });
    await vi.advanceTimersByTimeAsync(5);
    parent.abort(reason);
    const outcome = await run;
    expect(outcome.error?.kind, 'kind').toBe(kind);
    expect(
      outcome.steps.map((step) => step.status),
      'step statuses',
    ).toEqual(['canceled', 'canceled']);
  });

  it('a parent abort decides the outcome even when a step ignores it and succeeds', async () => {
    const parent = new CancelSource();
    const stubborn = controlledStep('stubborn', { ignoresAbort: true });
    const pipeline = new Pipeline([stubborn.step, sleepingStep('b', 1000)], clock);
    const run = pipeline.run(order, { parent });
    parent.abort(new OrderError('canceled', 'client went away'));
    stubborn.finish.resolve();
    const outcome = await run;
    expect(outcome.status, 'status').toBe('error');
    expect(outcome.error?.kind, 'kind').toBe('canceled');
  });

  it('a pre-aborted parent cancels every step without starting a timer', async () => {
    const tracker = new Tracker();
    const pipeline = new Pipeline([sleepingStep('a', 1000), sleepingStep('b', 1000)], {
      ...clock,
      tracker,
    });
    const parent = AbortSignal.abort(new OrderError('canceled', 'client went away'));
    const run = pipeline.run(order, { parent });
    expect(vi.getTimerCount(), 'timers started').toBe(0);
    const outcome = await run;
    expect(outcome.error?.kind).toBe('canceled');
    expect(outcome.steps.map((step) => step.status)).toEqual(['canceled', 'canceled']);
    expect(tracker.active, 'tracker').toBe(0);
  });

  it('a failure that is not an OrderError is `internal` with the fixed message; its text never leaks', async () => {
    const secret = 'connection string postgres://admin:hunter2@db';
    const pipeline = new Pipeline(
      [sleepingStep('a', 10, new Error(secret)), sleepingStep('b', 1000)],
      clock,
    );
    const run = pipeline.run(order);
    await vi.advanceTimersByTimeAsync(10);
    const outcome = await run;
    expect(outcome).toEqual({
      status: 'error',
      steps: [
        { name: 'a', status: 'error', durationMs: 10, detail: 'internal' },
        { name: 'b', status: 'canceled', durationMs: 10 },
      ],
      error: { kind: 'internal', message: 'internal error' },
    });
    expect(JSON.stringify(outcome), 'outcome text').not.toContain('hunter2');
  });

  it.each([
    [
      'throws synchronously',
      (): Promise<unknown> => {
        throw new Error('sync');
      },
    ],
    ['returns a non-promise', (): Promise<unknown> => 42 as unknown as Promise<unknown>],
    [
      'rejects with a value that is not an Error',
      (): Promise<unknown> => {
        const raw: unknown = 'raw failure';
        return Promise.reject(raw);
      },
    ],
  ])('a step that %s fails the order as `internal`', async (_, run) => {
    const other = controlledStep('other');
    const pipeline = new Pipeline([{ name: 'broken', run }, other.step], clock);
    const outcome = await pipeline.run(order);
    expect(outcome.error, 'error').toEqual({ kind: 'internal', message: 'internal error' });
    expect(outcome.steps[0], 'broken step').toMatchObject({ status: 'error', detail: 'internal' });
    expect(outcome.steps[1]?.status, 'other step').toBe('canceled');
  });

  it('run never rejects and leaves the tracker at zero, with all steps seen in flight at once', async () => {
    const tracker = new Tracker();
    const steps = ['a', 'b', 'c', 'd'].map((name) => controlledStep(name));
    const pipeline = new Pipeline(
      steps.map(({ step }) => step),
      { ...clock, tracker },
    );
    const run = pipeline.run(order);
    await flushMicrotasks();
    expect(tracker.active, 'in flight while running').toBe(4);
    for (const { finish } of steps) finish.resolve();
    await run;
    expect(tracker.active, 'in flight after run').toBe(0);
    expect(tracker.peak, 'peak').toBe(4);
    expect(tracker.started, 'started').toBe(4);
  });

  it('the tracker returns to zero after a failure and after a deadline', async () => {
    const tracker = new Tracker();
    const pipeline = new Pipeline(
      [sleepingStep('a', 10, new OrderError('payment_declined', 'no')), sleepingStep('b', 1000)],
      { ...clock, tracker },
    );
    const failing = pipeline.run(order);
    await vi.advanceTimersByTimeAsync(10);
    expect((await failing).error?.kind).toBe('payment_declined');
    expect(tracker.active, 'after a failure').toBe(0);
    const late = new Pipeline([sleepingStep('a', 1000)], { ...clock, tracker });
    const timedOut = runWithDeadline(late, order, 5);
    await vi.advanceTimersByTimeAsync(5);
    expect((await timedOut).error?.kind).toBe('timeout');
    expect(tracker.active, 'after a deadline').toBe(0);
    expect(vi.getTimerCount(), 'timers left').toBe(0);
  });

  it('orders under one long-lived parent signal leave no listener on it', async () => {
    const server = new AbortController();
    const instant: Step<TestOrder> = { name: 'instant', run: () => Promise.resolve() };
    const failing: Step<TestOrder> = { name: 'failing', run: () => Promise.reject(new Error('x')) };
    const pipeline = new Pipeline([instant, failing], clock);
    for (let i = 0; i < 1000; i += 8) {
      const batch = Array.from({ length: 8 }, () => pipeline.run(order, { parent: server.signal }));
      expect(getEventListeners(server.signal, 'abort').length, 'listeners while running').toBe(8);
      await Promise.all(batch);
    }
    expect(getEventListeners(server.signal, 'abort').length, 'listeners after').toBe(0);
    expect(vi.getTimerCount(), 'timers after').toBe(0);
  });

  it('an empty step list throws a TypeError', () => {
    expect(() => new Pipeline([])).toThrow(TypeError);
  });

  it('duplicate step names throw a TypeError', () => {
    expect(() => new Pipeline([sleepingStep('a', 1), sleepingStep('a', 2)])).toThrow(TypeError);
  });

  it('stepNames lists the steps in registration order', () => {
    const pipeline = new Pipeline([sleepingStep('x', 1), sleepingStep('y', 1)]);
    expect(pipeline.stepNames).toEqual(['x', 'y']);
  });
});
