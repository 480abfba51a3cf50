import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { Semaphore, type Permit } from '../../src/core/semaphore.js';
import { TaskGroup } from '../../src/core/task-group.js';
import { Tracker } from '../../src/core/tracker.js';

// The fast-check scheduler decides in which order the scheduled events (arrivals, aborts,
// the end of a hold, a task finishing) happen, so each run explores another interleaving.

describe('Semaphore properties', () => {
  it('in-flight never exceeds the size; every waiter is served or rejected with its abort; nothing is left held', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.record({ aborts: fc.boolean(), failsWhileHolding: fc.boolean() }), {
          minLength: 1,
          maxLength: 16,
        }),
        async (s, size, acquirers) => {
          const pool = new Semaphore(size);
          const tracker = new Tracker();
          const outcomes: ('served' | 'rejected')[] = [];
          const sources: CancelSource[] = [];
          const runs = acquirers.map(async ({ aborts, failsWhileHolding }, i) => {
            const cancel = new CancelSource();
            sources.push(cancel);
            const reason = new Error(`abort ${i}`);
            if (aborts)
              void s.schedule(Promise.resolve(), `abort ${i}`).then(() => cancel.abort(reason));
            await s.schedule(Promise.resolve(), `arrive ${i}`);
            let permit: Permit;
            try {
              permit = await pool.acquire(cancel);
            } catch (error) {
              expect(error, `acquirer ${i} rejected with`).toBe(reason);
              outcomes[i] = 'rejected';
              return;
            }
            outcomes[i] = 'served';
            tracker.enter();
            expect(tracker.active, 'holders at once').toBeLessThanOrEqual(size);
            expect(pool.inUse, 'inUse').toBeLessThanOrEqual(size);
            try {
              await s.schedule(Promise.resolve(), `hold ${i}`);
              if (failsWhileHolding) throw new Error(`holder ${i} failed`);
            } catch {
              // a failing holder still gives its slot back below
            } finally {
              tracker.leave();
              permit.release();
            }
          });
          await s.waitFor(Promise.all(runs));
          for (const [i, { aborts }] of acquirers.entries()) {
            const outcome = outcomes[i];
            if (aborts) expect(['served', 'rejected'], `acquirer ${i}`).toContain(outcome);
            else expect(outcome, `acquirer ${i} (never aborted)`).toBe('served');
          }
          expect(tracker.active, 'holders at the end').toBe(0);
          expect(pool.inUse, 'inUse at the end').toBe(0);
          expect(pool.waiting, 'waiting at the end').toBe(0);
          for (const source of sources) expect(source.listenerCount, 'listeners left').toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

type TaskPlan = 'succeeds' | 'fails' | 'stops on abort' | 'ignores abort';

describe('TaskGroup properties', () => {
  it('wait settles only when every task has settled, with the first failure by time, leaving nothing behind', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(
          fc.constantFrom<TaskPlan>('succeeds', 'fails', 'stops on abort', 'ignores abort'),
          {
            maxLength: 8,
          },
        ),
        fc.boolean(),
        async (s, plans, parentAborts) => {
          const parent = new CancelSource();
          const parentReason = new Error('parent aborted');
          const tracker = new Tracker();
          const failures: unknown[] = []; // every failure in the order it happened
          if (parentAborts) {
            void s.schedule(Promise.resolve(), 'parent abort').then(() => {
              // Counts as a failure only while the group still listens, i.e. has not ended.
              const groupListening = parent.listenerCount > 0;
              parent.abort(parentReason);
              if (groupListening) failures.push(parentReason);
            });
          }
          const group = new TaskGroup(parent);
          for (const [i, plan] of plans.entries()) {
            group.go(async (cancel) => {
              tracker.enter();
              try {
                if (plan === 'stops on abort') {
                  const stopped = new Promise<void>((_, reject) => {
                    const remove = cancel.onAbort(reject);
                    void s.schedule(Promise.resolve(), `task ${i} done`).then(remove);
                  });
                  await Promise.race([stopped, s.schedule(Promise.resolve(), `task ${i} ends`)]);
                } else {
                  await s.schedule(Promise.resolve(), `task ${i} ${plan}`);
                }
                if (plan === 'fails') {
                  const error = new Error(`task ${i} failed`);
                  if (!group.cancellation.aborted) failures.push(error);
                  throw error;
                }
              } finally {
                tracker.leave();
              }
            });
          }
          let settledWith: { ok: true } | { ok: false; error: unknown } | undefined;
          let activeAtSettle = -1;
          const waited = group.wait().then(
            () => {
              activeAtSettle = tracker.active;
              settledWith = { ok: true };
            },
            (error: unknown) => {
              activeAtSettle = tracker.active;
              settledWith = { ok: false, error };
            },
          );
          await s.waitFor(waited);
          await s.waitIdle(); // let a parent abort scheduled after the end run, harmlessly
          expect(activeAtSettle, 'tasks running when wait settled').toBe(0);
          expect(tracker.started, 'tasks started').toBe(plans.length);
          if (failures.length === 0) expect(settledWith, 'outcome').toEqual({ ok: true });
          else expect(settledWith, 'outcome').toEqual({ ok: false, error: failures[0] });
          expect(parent.listenerCount, 'listeners left on the parent').toBe(0);
          expect(group.cancellation.aborted, 'group cancellation aborted at the end').toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
