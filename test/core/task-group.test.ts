import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { TaskGroup } from '../../src/core/task-group.js';
import { deferred, flushMicrotasks, promiseState } from '../helpers.js';

/** untilAborted resolves never and rejects with the cancellation's reason when it aborts. */
function untilAborted(group: TaskGroup): Promise<never> {
  const { cancellation } = group;
  return new Promise((_, reject) => {
    cancellation.onAbort(reject);
  });
}

describe('TaskGroup', () => {
  it('wait resolves when every task succeeds, and ends the group’s cancellation', async () => {
    const group = new TaskGroup();
    const results: number[] = [];
    for (const value of [1, 2, 3]) {
      group.go(async () => {
        await Promise.resolve();
        results.push(value);
      });
    }
    expect(group.pending, 'pending after go').toBe(3);
    await group.wait();
    expect(results.sort(), 'tasks run').toEqual([1, 2, 3]);
    expect(group.pending, 'pending after wait').toBe(0);
    // As errgroup's Wait cancels its context, the ended group's cancellation is aborted.
    expect(group.cancellation.aborted, 'cancellation aborted after wait').toBe(true);
  });

  it('wait on an empty group resolves', async () => {
    await expect(new TaskGroup().wait()).resolves.toBeUndefined();
  });

  it('the first error by time aborts the siblings and is the one reported', async () => {
    const group = new TaskGroup();
    const first = deferred();
    const second = deferred();
    const firstError = new Error('first');
    const secondError = new Error('second');
    group.go(() => second.promise);
    group.go(() => first.promise);
    const sibling = untilAborted(group);
    group.go(() => sibling);
    const waited = group.wait();
    first.reject(firstError);
    await flushMicrotasks();
    expect(group.cancellation.aborted, 'aborted after the first failure').toBe(true);
    expect(group.cancellation.reason, 'abort reason').toBe(firstError);
    second.reject(secondError);
    await expect(waited).rejects.toBe(firstError);
  });

  it('a pre-aborted parent aborts the group before any task starts and is its error', async () => {
    const reason = new Error('client went away');
    const group = new TaskGroup(AbortSignal.abort(reason));
    let seenAborted: boolean | undefined;
    group.go((cancel) => {
      seenAborted = cancel.aborted;
    });
    expect(seenAborted, 'task saw an aborted cancellation').toBe(true);
    await expect(group.wait()).rejects.toBe(reason);
  });

  it.each([
    ['AbortSignal', () => new AbortController()],
    ['CancelSource', () => new CancelSource()],
  ])('a parent %s abort (deadline-like) aborts the group with its reason', async (_, make) => {
    const parent = make();
    const group = new TaskGroup(parent instanceof AbortController ? parent.signal : parent);
    const task = untilAborted(group);
    group.go(() => task);
    const waited = group.wait();
    const reason = new Error('deadline');
    parent.abort(reason);
    await expect(waited).rejects.toBe(reason);
  });

  it('a parent abort is the group’s error even when every task ignores it and succeeds', async () => {
    const parent = new AbortController();
    const group = new TaskGroup(parent.signal);
    const task = deferred();
    group.go(() => task.promise);
    const waited = group.wait();
    const reason = new Error('deadline');
    parent.abort(reason);
    task.resolve();
    await expect(waited).rejects.toBe(reason);
  });

  it('a parent abort stays the error when a task then fails with its own error', async () => {
    const parent = new CancelSource();
    const group = new TaskGroup(parent);
    const task = deferred();
    group.go(() => task.promise);
    const waited = group.wait();
    const reason = new Error('client went away');
    parent.abort(reason);
    task.reject(new Error('stopped, reported in its own words'));
    await expect(waited).rejects.toBe(reason);
  });

  it('a task that throws synchronously fails the group and siblings still run to the end', async () => {
    const group = new TaskGroup();
    const boom = new Error('sync');
    const sibling = deferred();
    group.go(() => sibling.promise);
    group.go(() => {
      throw boom;
    });
    const waited = group.wait();
    expect(group.cancellation.reason, 'reason after the sync throw').toBe(boom);
    expect(await promiseState(waited), 'wait settled while a sibling runs').toBe('pending');
    sibling.resolve();
    await expect(waited).rejects.toBe(boom);
  });

  it('a task that returns a non-promise value succeeds', async () => {
    const group = new TaskGroup();
    group.go(() => 42);
    group.go(() => undefined);
    expect(group.pending).toBe(0);
    await expect(group.wait()).resolves.toBeUndefined();
  });

  it('abort cancels the group as a failure would; only the first reason counts', async () => {
    const group = new TaskGroup();
    const task = untilAborted(group);
    group.go(() => task);
    group.abort('first');
    group.abort('second');
    await expect(group.wait()).rejects.toBe('first');
  });

  it('wait does not resolve while any task is still running', async () => {
    const group = new TaskGroup();
    const tasks = [deferred(), deferred(), deferred()];
    for (const task of tasks) group.go(() => task.promise);
    const waited = group.wait();
    for (const [i, task] of tasks.entries()) {
      expect(await promiseState(waited), `wait settled with ${3 - i} tasks running`).toBe(
        'pending',
      );
      task.resolve();
    }
    expect(await promiseState(waited), 'wait settled after the last task').toBe('fulfilled');
  });

  it('wait does not reject while a failed group still has a task running', async () => {
    const group = new TaskGroup();
    const stubborn = deferred();
    group.go(() => stubborn.promise); // ignores the cancellation
    group.go(() => Promise.reject(new Error('fail')));
    const waited = group.wait();
    expect(await promiseState(waited), 'wait settled while a task runs').toBe('pending');
    stubborn.resolve();
    await expect(waited).rejects.toThrow('fail');
  });

  it('go after wait throws, and a second wait rejects', async () => {
    const group = new TaskGroup();
    const waited = group.wait();
    expect(() => {
      group.go(() => undefined);
    }).toThrow(/after wait/);
    await expect(group.wait()).rejects.toThrow(/twice/);
    await waited;
  });

  describe('long-lived parents', () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning);
    };
    afterEach(() => {
      process.off('warning', onWarning);
      warnings.length = 0;
    });

    // Groups run eight at a time: enough to overlap, below the warning threshold of 10, so a
    // warning can only come from listeners left behind.
    async function runGroups(count: number, parent: AbortSignal | CancelSource): Promise<void> {
      for (let i = 0; i < count; i += 8) {
        const batch: Promise<void>[] = [];
        for (let j = 0; j < 8; j++) {
          const group = new TaskGroup(parent);
          group.go(async () => {
            await Promise.resolve();
          });
          if (j % 2 === 1) group.go(() => Promise.reject(new Error('fail')));
          batch.push(group.wait().catch(() => undefined));
        }
        await Promise.all(batch);
      }
    }

    it('no listener is left on an AbortSignal parent after 10,000 groups, and no warning', async () => {
      process.on('warning', onWarning);
      const parent = new AbortController();
      await runGroups(10_000, parent.signal);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on next tick
      expect(getEventListeners(parent.signal, 'abort').length, 'abort listeners').toBe(0);
      expect(
        warnings.map((warning) => warning.message),
        'MaxListenersExceededWarning messages',
      ).toEqual([]);
    });

    it('no listener is left on a CancelSource parent after 10,000 groups', async () => {
      const parent = new CancelSource();
      await runGroups(10_000, parent);
      expect(parent.listenerCount).toBe(0);
    });

    it('a group that is still running holds exactly one listener on its parent', async () => {
      const parent = new AbortController();
      const group = new TaskGroup(parent.signal);
      const task = deferred();
      group.go(() => task.promise);
      const waited = group.wait();
      expect(getEventListeners(parent.signal, 'abort').length, 'while running').toBe(1);
      task.resolve();
      await waited;
      expect(getEventListeners(parent.signal, 'abort').length, 'after wait').toBe(0);
    });
  });
});
