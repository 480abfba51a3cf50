import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CancelSource } from '../../src/core/cancellation.js';
import { Tracker } from '../../src/core/tracker.js';
import { OrderError, errorKinds, type ErrorKind } from '../../src/order/errors.js';
import { Pipeline, type OrderOutcome } from '../../src/order/pipeline.js';
import type { Step } from '../../src/order/step.js';
import { runWithDeadline } from '../helpers.js';

// Random schedules for the pipeline as a whole: each step does one of the things a step can
// do (succeed, fail with a kind, break the contract, stop on abort, ignore the abort) at a
// random time; the deadline (on the order's parent, as the service puts it) and a client's
// abort come at random times or not at all; with or without an abandon grace period. Time
// is fake, so every schedule runs in microseconds.

type Behaviour =
  | { does: 'resolve'; at: number }
  | { does: 'fail'; at: number; kind: ErrorKind }
  | { does: 'reject-non-error'; at: number }
  | { does: 'throw-sync' }
  | { does: 'non-promise' }
  /** Waits for the abort (or `at`), then resolves `lateBy` ms after it: ignores the abort. */
  | { does: 'ignore-abort'; at: number; lateBy: number }
  /** Resolves at `at` unless aborted first, then rejects at once: a well-behaved step. */
  | { does: 'stop-on-abort'; at: number };

const time = fc.integer({ min: 1, max: 100 });
const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  fc.record({ does: fc.constant('resolve' as const), at: time }),
  fc.record({
    does: fc.constant('fail' as const),
    at: time,
    kind: fc.constantFrom<ErrorKind>('payment_declined', 'vendor_unavailable', 'no_courier'),
  }),
  fc.record({ does: fc.constant('reject-non-error' as const), at: time }),
  fc.record({ does: fc.constant('throw-sync' as const) }),
  fc.record({ does: fc.constant('non-promise' as const) }),
  fc.record({
    does: fc.constant('ignore-abort' as const),
    at: time,
    lateBy: fc.integer({ min: 1, max: 300 }),
  }),
  fc.record({ does: fc.constant('stop-on-abort' as const), at: time }),
);

function toStep(name: string, plan: Behaviour): Step<object> {
  return {
    name,
    run: (_order, cancel) => {
      switch (plan.does) {
        case 'throw-sync':
          throw new Error('sync');
        case 'non-promise':
          return 7 as unknown as Promise<unknown>;
        case 'resolve':
          return new Promise((resolve) => setTimeout(resolve, plan.at));
        case 'fail':
          return new Promise((_resolve, reject) =>
            setTimeout(reject, plan.at, new OrderError(plan.kind, plan.kind)),
          );
        case 'reject-non-error':
          return new Promise((_resolve, reject) => setTimeout(reject, plan.at, 'nope'));
        case 'stop-on-abort':
          return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
              stop();
              resolve(undefined);
            }, plan.at);
            const stop = cancel.onAbort((reason) => {
              clearTimeout(timer);
              reject(reason instanceof Error ? reason : new Error('aborted'));
            });
          });
        case 'ignore-abort':
          return new Promise((resolve) => {
            let timer = setTimeout(() => {
              stop();
              resolve(undefined);
            }, plan.at);
            const stop = cancel.onAbort(() => {
              clearTimeout(timer);
              timer = setTimeout(resolve, plan.lateBy);
            });
          });
      }
    },
  };
}

/** When a step fails on its own (not because of an abort), if it does; sync failures at 0. */
function failsAt(plan: Behaviour): number | undefined {
  if (plan.does === 'throw-sync' || plan.does === 'non-promise') return 0;
  if (plan.does === 'fail' || plan.does === 'reject-non-error') return plan.at;
  return undefined;
}

describe('pipeline properties over random schedules', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('always answers, in registration order, with the first cause, abandoning only stubborn steps past the grace, and leaves nothing behind', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(behaviour, { minLength: 1, maxLength: 4 }),
        fc.option(time, { nil: undefined }),
        fc.option(time, { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 150 }), { nil: undefined }),
        async (plans, deadlineMs, parentAbortAt, abandonGraceMs) => {
          const tracker = new Tracker();
          const names = plans.map((_plan, i) => `s${i}`);
          const pipeline = new Pipeline<object>(
            plans.map((plan, i) => toStep(names[i] as string, plan)),
            { tracker, abandonGraceMs },
          );
          const parent = new CancelSource();
          if (parentAbortAt !== undefined) {
            setTimeout(() => parent.abort(new OrderError('canceled', 'gone')), parentAbortAt);
          }
          const answer: { outcome?: OrderOutcome; rejected?: unknown } = {};
          const run =
            deadlineMs === undefined
              ? pipeline.run({}, { parent })
              : runWithDeadline(pipeline, {}, deadlineMs, parent);
          run.then(
            (value) => (answer.outcome = value),
            (error: unknown) => (answer.rejected = error ?? 'rejected'),
          );
          // Run the schedule until the answer, then until every late step has settled.
          for (let i = 0; i < 1000 && !('outcome' in answer) && !('rejected' in answer); i++) {
            await vi.advanceTimersByTimeAsync(1);
          }
          expect(answer.rejected, 'run never rejects').toBeUndefined();
          const { outcome } = answer;
          if (outcome === undefined) throw new Error('no answer within 1000 ms');
          const answered = structuredClone(outcome);
          await vi.advanceTimersByTimeAsync(1000);

          // Registration order, well-formed statuses.
          expect(outcome.steps.map((step) => step.name)).toEqual(names);
          for (const step of outcome.steps) {
            expect(['ok', 'error', 'canceled', 'abandoned']).toContain(step.status);
            expect(step.detail !== undefined, `detail iff error: ${step.status}`).toBe(
              step.status === 'error',
            );
          }
          expect(outcome.status === 'ok').toBe(outcome.error === undefined);
          if (outcome.error) expect(errorKinds).toContain(outcome.error.kind);
          if (outcome.status === 'ok') {
            expect(outcome.steps.every((step) => step.status === 'ok')).toBe(true);
          }

          // The first cause wins when it is unambiguous in time.
          const causes = [
            ...plans.map((plan) => {
              const at = failsAt(plan);
              const kind: ErrorKind = plan.does === 'fail' ? plan.kind : 'internal';
              return at === undefined ? undefined : { at, kind };
            }),
            deadlineMs === undefined ? undefined : { at: deadlineMs, kind: 'timeout' as const },
            parentAbortAt === undefined
              ? undefined
              : { at: parentAbortAt, kind: 'canceled' as const },
          ].filter((cause) => cause !== undefined);
          const first = Math.min(...causes.map((cause) => cause.at));
          const firsts = causes.filter((cause) => cause.at === first);
          // Without a cause, the order is done once its slowest step has succeeded.
          // A step that fails on its own means the order cannot succeed at all.
          const doneAt = plans.some((plan) => failsAt(plan) !== undefined)
            ? Infinity
            : Math.max(...plans.map((plan) => ('at' in plan ? plan.at : 0)));
          if (causes.length === 0 || first > doneAt) expect(outcome.status).toBe('ok');
          else if (first < doneAt && firsts.length === 1) {
            expect(outcome.error?.kind).toBe(firsts[0]?.kind);
          }

          // Abandoned only with a grace period, and only a step that ignores the abort.
          outcome.steps.forEach((step, i) => {
            if (step.status !== 'abandoned') return;
            expect(abandonGraceMs).toBeDefined();
            // Only a step that does not stop on the abort (a timer-bound step ignores it too).
            expect(['stop-on-abort', 'throw-sync', 'non-promise']).not.toContain(plans[i]?.does);
          });
          if (abandonGraceMs === undefined) {
            expect(outcome.steps.some((step) => step.status === 'abandoned')).toBe(false);
          }

          // Late settling changed nothing; nothing is left running or scheduled.
          expect(outcome).toEqual(answered);
          expect([tracker.active, tracker.abandoned]).toEqual([0, 0]);
          expect(vi.getTimerCount(), 'no timer left').toBe(0);
          expect(parent.listenerCount, 'no listener left on the parent').toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
