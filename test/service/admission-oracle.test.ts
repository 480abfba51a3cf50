import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  burst,
  judge,
  patterns,
  rate,
  warmUp,
  type Pattern,
  type Shape,
  type SimOrder,
} from '../../bench/admission-oracle.js';

// Admission against an oracle (bench/admission-oracle.ts): random arrival patterns replayed
// through the real Admission, MeasuredPool and Semaphore on a simulated clock; for each order
// the oracle, a FIFO queue with the known hold times, says whether it would have finished in
// time. Steps of known duration: every order of a pattern holds its courier as long, and does
// as much other work.

/** bound checks the two rates of a judgement and the oracle's own exactness. */
function expectWithinBounds(judged: Awaited<ReturnType<typeof judge>>): void {
  const { pattern, feasible, refusedFeasible, admitted, admittedMissed } = judged;
  expect(judged.oracleMismatches, `${pattern}: admitted orders the oracle got wrong`).toBe(0);
  expect(
    refusedFeasible,
    `${pattern}: ${refusedFeasible} of ${feasible} feasible orders refused (want ≤ 1%)`,
  ).toBeLessThanOrEqual(Math.floor(feasible * 0.01));
  expect(
    admittedMissed,
    `${pattern}: ${admittedMissed} of ${admitted} admitted orders missed their deadline (want ≤ 0.1%)`,
  ).toBeLessThanOrEqual(Math.floor(admitted * 0.001));
}

const shape: fc.Arbitrary<Shape> = fc.record({
  poolSize: fc.integer({ min: 1, max: 8 }),
  deadlineMs: fc.integer({ min: 300, max: 3000 }),
  reachMs: fc.integer({ min: 0, max: 5 }),
  finishMs: fc.integer({ min: 0, max: 5 }),
  overloadWaitMs: fc.integer({ min: 10, max: 100 }),
  overloadWindowMs: fc.integer({ min: 200, max: 2000 }),
});

const step = fc.record({
  holdMs: fc.integer({ min: 1, max: 300 }),
  otherMs: fc.integer({ min: 0, max: 400 }),
});

type Arrivals = (
  at: number,
  capacityPerSecond: number,
  step: Omit<SimOrder, 'at'>,
) => { name: string; orders: SimOrder[] };

const arrivals: fc.Arbitrary<Arrivals> = fc.oneof(
  fc.integer({ min: 1, max: 400 }).map((count): Arrivals => (at, _, s) => ({
    name: `burst of ${count}`,
    orders: burst(count, at, () => s),
  })),
  fc
    .record({
      bursts: fc.integer({ min: 2, max: 6 }),
      count: fc.integer({ min: 5, max: 150 }),
      everyMs: fc.integer({ min: 100, max: 2000 }),
    })
    .map(({ bursts, count, everyMs }): Arrivals => (at, _, s) => ({
      name: `${bursts} bursts of ${count} every ${everyMs} ms`,
      orders: Array.from({ length: bursts }, (__, b) =>
        burst(count, at + b * everyMs, () => s),
      ).flat(),
    })),
  fc
    .record({
      from: fc.double({ min: 0.1, max: 2, noNaN: true }),
      to: fc.double({ min: 0.1, max: 6, noNaN: true }),
      seconds: fc.integer({ min: 1, max: 4 }),
    })
    .map(({ from, to, seconds }): Arrivals => (at, capacity, s) => ({
      name: `rate ${from.toFixed(2)}× → ${to.toFixed(2)}× capacity over ${seconds} s`,
      orders: rate(
        Math.min(2000, from * capacity),
        Math.min(2000, to * capacity),
        seconds,
        at,
        () => s,
      ),
    })),
);

// An order that finds a courier free is always admitted (see Admission): the patterns are of
// orders that, alone, finish in time.
const pattern: fc.Arbitrary<Pattern> = fc
  .record({ shape, step, arrivals })
  .filter(
    ({ shape: service, step: s }) =>
      service.reachMs + Math.max(s.holdMs, s.otherMs) + service.finishMs <= service.deadlineMs,
  )
  .map(({ shape: service, step: s, arrivals: arrive }) => {
    const warm = warmUp(3, s, service);
    const capacity = (service.poolSize * 1000) / s.holdMs;
    const { name, orders } = arrive(warm.until, capacity, s);
    return {
      ...service,
      name: `${name}, pool ${service.poolSize}, courier ${s.holdMs} ms, other ${s.otherMs} ms, deadline ${service.deadlineMs} ms`,
      orders: [...warm.orders, ...orders],
    };
  });

describe('admission against the oracle', () => {
  it('refuses at most 1% of the feasible orders and admits at most 0.1% that miss their deadline, on random patterns', async () => {
    await fc.assert(
      fc.asyncProperty(pattern, async (p) => {
        expectWithinBounds(await judge(p));
      }),
      { numRuns: 60, seed: 20261204 },
    );
  }, 120_000);

  it.each(patterns(true).filter((p) => p.bounded === true))(
    'within bounds on the benchmark’s pattern: $name',
    async (p) => {
      expectWithinBounds(await judge(p));
    },
    60_000,
  );

  it('a cold burst of orders of 1 ms (the original stress test’s start) is admitted in full', async () => {
    const [cold] = patterns(true).filter((p) => p.name.startsWith('cold: burst of 100'));
    if (cold === undefined) throw new Error('no such pattern');
    const judged = await judge(cold);
    expect([judged.admitted, judged.admittedMissed]).toEqual([100, 0]);
  });
});
