import { describe, expect, it } from 'vitest';
import { TaskGroup } from '../../src/core/task-group.js';
import { deferred } from '../helpers.js';

describe('TaskGroup.go with a settled callback', () => {
  it('tells how each task ended before wait settles', async () => {
    const group = new TaskGroup();
    const seen: string[] = [];
    const slow = deferred();
    const boom = new Error('boom');
    group.go(
      () => slow.promise,
      (failed, error) => seen.push(`slow ${failed} ${String(error)}`),
    );
    group.go(
      () => Promise.reject(boom),
      (failed, error) => seen.push(`reject ${failed} ${error === boom}`),
    );
    group.go(
      () => {
        throw boom;
      },
      (failed, error) => seen.push(`throw ${failed} ${error === boom}`),
    );
    group.go(
      () => 42,
      (failed) => seen.push(`value ${failed}`),
    );
    let seenWhenWaitSettled = -1;
    const waited = group.wait().then(
      () => 'resolved',
      (error: unknown) => {
        seenWhenWaitSettled = seen.length;
        return error === boom ? 'rejected with the first error' : 'wrong error';
      },
    );
    slow.resolve();
    await expect(waited).resolves.toBe('rejected with the first error');
    expect(seenWhenWaitSettled, 'callbacks seen when wait settled').toBe(4);
    expect(seen.sort()).toEqual([
      'reject true true',
      'slow false undefined',
      'throw true true',
      'value false',
    ]);
  });

  it('is called once per task, and the group counts each task once', async () => {
    const group = new TaskGroup();
    let calls = 0;
    for (let i = 0; i < 3; i++) {
      group.go(
        async () => undefined,
        () => calls++,
      );
    }
    expect(group.pending).toBe(3);
    await group.wait();
    expect(calls).toBe(3);
    expect(group.pending).toBe(0);
  });
});

describe('TaskGroup.go with a settled callback that throws', () => {
  it('fails the group with what it threw and still counts the task', async () => {
    const group = new TaskGroup();
    const thrown = new Error('callback failed');
    group.go(
      async () => undefined,
      () => {
        throw thrown;
      },
    );
    await expect(group.wait()).rejects.toBe(thrown);
    expect(group.pending).toBe(0);
    expect(group.cancellation.aborted).toBe(true);
  });
});
