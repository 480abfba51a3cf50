import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { sleep } from '../../src/core/sleep.js';
import { flushMicrotasks } from '../helpers.js';

describe('sleep', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([
    ['without a cancellation', undefined],
    ['with a cancellation', new CancelSource()],
  ])('resolves after its delay %s and leaves no timer or listener', async (_, cancel) => {
    let done = false;
    const slept = sleep(100, cancel).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(99);
    expect(done, 'resolved at 99 ms').toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await slept;
    expect(done, 'resolved at 100 ms').toBe(true);
    expect(vi.getTimerCount(), 'timers left').toBe(0);
    expect(cancel?.listenerCount ?? 0, 'listeners left').toBe(0);
  });

  it('an abort rejects at once with the reason and clears the timer', async () => {
    const cancel = new CancelSource();
    const slept = sleep(10_000, cancel);
    expect(vi.getTimerCount(), 'timers while sleeping').toBe(1);
    const reason = new Error('stop');
    cancel.abort(reason);
    await expect(slept).rejects.toBe(reason);
    expect(vi.getTimerCount(), 'timers after abort').toBe(0);
  });

  it('an already aborted cancellation rejects without starting a timer', async () => {
    const cancel = new CancelSource();
    cancel.abort('gone');
    const slept = sleep(100, cancel);
    expect(vi.getTimerCount()).toBe(0);
    await expect(slept).rejects.toBe('gone');
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])(
    'ms %s rejects with a RangeError',
    async (ms) => {
      await expect(sleep(ms)).rejects.toThrow(RangeError);
      expect(vi.getTimerCount()).toBe(0);
    },
  );

  it('0 ms yields to the event loop once', async () => {
    let done = false;
    const slept = sleep(0, new CancelSource()).then(() => (done = true));
    await flushMicrotasks();
    expect(done, 'resolved before the timers ran').toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    await slept;
    expect(done).toBe(true);
  });
});
