import pLimit from 'p-limit';
import { Bench } from 'tinybench';
import { CancelSource, type Cancellation } from '../src/core/cancellation.js';
import { Semaphore } from '../src/core/semaphore.js';
import { TaskGroup } from '../src/core/task-group.js';
import { OrderError } from '../src/order/errors.js';
import type { Order } from '../src/order/order.js';
import { Pipeline } from '../src/order/pipeline.js';
import { simulatedSteps } from '../src/order/simulated-steps.js';
import type { Step } from '../src/order/step.js';
import {
  NaiveGroup,
  NaiveSemaphore,
  naiveCancelSource,
  type BenchCancel,
  type BenchGroup,
  type BenchPool,
} from './naive.js';
import { row, type Row } from './report.js';

/**
 * The in-process benchmarks: task group, semaphore and pipeline, each beside the bare
 * `Promise.all` baseline, the naive AbortController implementation and (for the semaphore)
 * p-limit, all measured in the same run. Each tinybench sample runs a batch of operations
 * one after the other and records the mean per operation, so the timer's resolution and the
 * harness's own await do not swamp figures of a few hundred nanoseconds.
 */

// The steps the figures are measured with. The failing step fails after one await, as a
// step does that failed on an upstream's answer; a promise rejected before anyone could
// attach a handler costs ~0.5 µs more in Node's unhandled-rejection bookkeeping, reported
// in a row of its own.
const declined = new OrderError('payment_declined', 'payment was declined');
const noop = async (): Promise<void> => {};
const failAfterAwait = async (): Promise<void> => {
  await Promise.resolve();
  throw declined;
};
const failAtOnce = async (): Promise<void> => {
  throw declined;
};
/** untilAborted settles only when the cancellation aborts: a step that waits for cancellation. */
const untilAborted = (cancel: BenchCancel): Promise<void> =>
  new Promise((_resolve, reject) => {
    if (cancel.aborted) reject(cancel.reason);
    else cancel.onAbort(reject);
  });
const ignore = (): void => {};

export interface InProcessOptions {
  quick: boolean;
}

export async function inProcessBenchmarks(options: InProcessOptions): Promise<Row[]> {
  const bench = new Bench({
    time: options.quick ? 150 : 1500,
    warmupTime: options.quick ? 50 : 300,
    iterations: 10,
  });
  const batch = 256;
  const add = (name: string, op: () => Promise<unknown>, opsPerCall = 1): void => {
    bench.add(name, async () => {
      const start = bench.now();
      for (let i = 0; i < batch; i++) await op();
      const elapsed = bench.now() - start;
      return {
        overriddenDuration: elapsed / (batch * opsPerCall),
        overriddenIterationCost: elapsed,
      };
    });
  };

  add('baseline', () => Promise.all([noop(), noop(), noop()]));

  const groupHappy = (group: BenchGroup): Promise<void> => {
    group.go(noop);
    group.go(noop);
    group.go(noop);
    return group.wait();
  };
  const groupCancel = (group: BenchGroup): Promise<void> => {
    group.go(failAfterAwait);
    group.go(untilAborted);
    group.go(untilAborted);
    return group.wait().catch(ignore);
  };
  add('group happy', () => groupHappy(new TaskGroup()));
  add('group happy naive', () => groupHappy(new NaiveGroup()));
  add('group cancel', () => groupCancel(new TaskGroup()));
  add('group cancel naive', () => groupCancel(new NaiveGroup()));

  // Semaphore: uncontended (one holder at a time), contended (64 holders for 4 slots, each
  // holding a slot one turn) and aborted waiters (64 queued behind a held slot, all aborted).
  const uncontended = async (pool: BenchPool): Promise<void> => {
    (await pool.acquire()).release();
  };
  const holders = 64;
  const contended = (pool: BenchPool): Promise<unknown> =>
    Promise.all(
      Array.from({ length: holders }, async () => {
        const permit = await pool.acquire();
        await Promise.resolve();
        permit.release();
      }),
    );
  const abortedWaiters = async (
    pool: BenchPool,
    source: () => { cancel: BenchCancel; abort(reason: unknown): void },
  ): Promise<void> => {
    const held = await pool.acquire();
    const cancelSource = source();
    const waiters = Array.from({ length: holders }, () =>
      pool.acquire(cancelSource.cancel).catch(ignore),
    );
    cancelSource.abort(declined);
    await Promise.all(waiters);
    held.release();
  };
  const sem1 = new Semaphore(1);
  const naive1 = new NaiveSemaphore(1);
  const limit1 = pLimit(1);
  add('sem uncontended', () => uncontended(sem1));
  add('sem uncontended naive', () => uncontended(naive1));
  add('sem uncontended p-limit', () => limit1(noop));
  const sem4 = new Semaphore(4);
  const naive4 = new NaiveSemaphore(4);
  const limit4 = pLimit(4);
  add('sem contended', () => contended(sem4), holders);
  add('sem contended naive', () => contended(naive4), holders);
  add(
    'sem contended p-limit',
    () => Promise.all(Array.from({ length: holders }, () => limit4(() => undefined))),
    holders,
  );
  const projectSource = (): { cancel: BenchCancel; abort(reason: unknown): void } => {
    const source = new CancelSource();
    return { cancel: source, abort: (reason) => source.abort(reason) };
  };
  add('sem aborted waiters', () => abortedWaiters(sem1, projectSource), holders);
  add('sem aborted waiters naive', () => abortedWaiters(naive1, naiveCancelSource), holders);

  // The pipeline: three no-op steps (the Go original's scenario), then the simulated steps
  // with zero delays, the courier step going through the pool.
  const steps = (run: Step<unknown>['run'][]): Step<unknown>[] =>
    run.map((fn, i) => ({ name: `step${i}`, run: fn }));
  const waitStep = (_order: unknown, cancel: Cancellation): Promise<void> => untilAborted(cancel);
  const happy = new Pipeline(steps([noop, noop, noop]));
  const cancel = new Pipeline(steps([failAfterAwait, waitStep, waitStep]));
  const cancelAtOnce = new Pipeline(steps([failAtOnce, waitStep, waitStep]));
  // The same pipelines with a constant clock: what the four clock reads of an order (its
  // start, then one per step for its duration) cost.
  const stoppedClock = { now: () => 0 };
  const happyNoClock = new Pipeline(steps([noop, noop, noop]), stoppedClock);
  const cancelNoClock = new Pipeline(steps([failAfterAwait, waitStep, waitStep]), stoppedClock);
  const order: Order = { id: 'bench', amount: 100 };
  const zero = { payment: 0, vendor: 0, courier: 0 };
  const simulated = {
    pipeline: new Pipeline(simulatedSteps({ courierPool: new Semaphore(4), delays: zero })),
  };
  const failing: Order = { id: 'bench', amount: 100, failStep: 'vendor' };
  add('pipeline happy', () => happy.run(order));
  add('pipeline cancel', () => cancel.run(order));
  add('pipeline cancel at once', () => cancelAtOnce.run(order));
  add('pipeline happy no clock', () => happyNoClock.run(order));
  add('pipeline cancel no clock', () => cancelNoClock.run(order));
  add('pipeline simulated', () => simulated.pipeline.run(order));
  add('pipeline simulated fail', () => simulated.pipeline.run(failing));

  await bench.run();

  const ns = (name: string): number => {
    const task = bench.getTask(name);
    const result = task?.result;
    if (result === undefined || !('latency' in result)) {
      throw new Error(`benchmark ${name} did not complete`);
    }
    return result.latency.p50 * 1e6;
  };
  const base = ns('baseline');
  const baseline = `Promise.all ×3 ${Math.round(base)} ns`;
  const perOp = (scenario: string, name: string, compare: string[], section = 'in-process'): Row =>
    row({
      section,
      scenario,
      value: ns(name),
      unit: 'ns',
      figure: `${Math.round(ns(name))} ns (${(ns(name) / base).toFixed(2)}×)`,
      baseline,
      compare: compare
        .map((other) => `${other.replace(/^.* /, '')} ${Math.round(ns(other))} ns`)
        .join(' · '),
    });
  const ratioRow = (scenario: string, name: string, limit: number): Row => {
    const value = ns(name);
    const ratio = value / base;
    return row({
      section: 'in-process',
      scenario,
      value,
      unit: 'ns',
      figure: `${Math.round(value)} ns (${ratio.toFixed(2)}×)`,
      baseline,
      target: `≤ ${limit}× baseline`,
      met: ratio <= limit,
    });
  };
  return [
    row({
      section: 'in-process',
      scenario: 'bare baseline: Promise.all of 3 no-op async fns',
      value: base,
      unit: 'ns',
    }),
    perOp('task group, 3 no-op tasks', 'group happy', ['group happy naive']),
    perOp('task group, 1 fails, 2 wait for cancellation', 'group cancel', ['group cancel naive']),
    perOp('semaphore acquire+release, uncontended', 'sem uncontended', [
      'sem uncontended naive',
      'sem uncontended p-limit',
    ]),
    perOp('semaphore, 64 holders for 4 slots (per acquire)', 'sem contended', [
      'sem contended naive',
      'sem contended p-limit',
    ]),
    perOp('semaphore, 64 waiters aborted (per waiter)', 'sem aborted waiters', [
      'sem aborted waiters naive',
    ]),
    ratioRow('pipeline happy path, 3 no-op steps', 'pipeline happy', 2.5),
    ratioRow('pipeline cancel path, 1 fails, 2 wait for cancellation', 'pipeline cancel', 3.5),
    perOp(
      'pipeline cancel path, failing step rejects before any await',
      'pipeline cancel at once',
      [],
    ),
    perOp(
      'pipeline happy path, constant clock (cost of the clock reads)',
      'pipeline happy no clock',
      [],
    ),
    perOp('pipeline cancel path, constant clock', 'pipeline cancel no clock', []),
    perOp('pipeline, simulated steps at 0 ms (courier via pool)', 'pipeline simulated', []),
    perOp('pipeline, simulated steps at 0 ms, vendor fails', 'pipeline simulated fail', []),
  ];
}
