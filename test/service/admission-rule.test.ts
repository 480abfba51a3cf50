import { describe, expect, it } from 'vitest';
import { Semaphore } from '../../src/core/semaphore.js';
import { CancelSource } from '../../src/core/cancellation.js';
import {
  Admission,
  type AdmissionOptions,
  type Admitted,
  type Refused,
} from '../../src/service/admission.js';
import { MeasuredPool } from '../../src/service/measured-pool.js';

// The admission rule on a clock the test moves, over a real semaphore: what it counts as the
// queue ahead, what it predicts, when the standing-queue cap holds.

/** Rig is an admission over a measured semaphore of `size` slots, on a clock the test moves. */
function rig(size: number, options: Partial<AdmissionOptions> = {}) {
  let now = 1000;
  let backlogMs = 0;
  const pool = new MeasuredPool(new Semaphore(size), { now: () => now });
  const admission = new Admission({
    courierPool: pool,
    storeBacklogMs: () => backlogMs,
    maxInflightOrders: 1000,
    retryAfterSeconds: 1,
    overloadWaitMs: 50,
    overloadWindowMs: 1000,
    now: () => now,
    ...options,
  });
  const admit = (remainingMs: number): Admitted | undefined => {
    const result = admission.admit(remainingMs);
    return result.admitted ? result : undefined;
  };
  /**
   * serve runs one admitted order to its end: it reaches the pool, waits for its courier,
   * holds it `holdMs`, its steps settle `afterMs` later and its outcome takes `finishMs`.
   */
  const serve = async (
    place: Admitted,
    { holdMs, afterMs = 0, finishMs = 0 }: { holdMs: number; afterMs?: number; finishMs?: number },
  ): Promise<void> => {
    const calledAt = now;
    const permit = await pool.acquire();
    place.courierGranted(now - calledAt);
    await advance(holdMs);
    permit.release();
    await advance(afterMs);
    place.stepsSettled();
    await advance(finishMs);
    place.release();
  };
  /** timers waiting on the clock: resolved, in order, as advance passes them. */
  const timers: { at: number; resolve: () => void }[] = [];
  const advance = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      timers.push({ at: now + ms, resolve });
    });
  /**
   * run moves the clock from timer to timer until none is left, or until `until` holds
   * (checked after each); resolves whether it stopped there.
   */
  const run = async (until?: () => boolean): Promise<boolean> => {
    for (;;) {
      await new Promise((resolve) => setImmediate(resolve));
      if (until?.() === true) return true;
      timers.sort((a, b) => a.at - b.at);
      const next = timers.shift();
      if (next === undefined) return false;
      now = Math.max(now, next.at);
      next.resolve();
    }
  };
  return {
    pool,
    admission,
    admit,
    serve,
    run,
    setBacklog: (ms: number) => {
      backlogMs = ms;
    },
    tick: (ms: number) => {
      now += ms;
    },
    now: () => now,
  };
}

/** warm serves `count` orders one after another, so every quantity is measured. */
async function warm(r: ReturnType<typeof rig>, count: number, holdMs: number, afterMs = 0) {
  for (let i = 0; i < count; i++) {
    const place = r.admit(10_000);
    if (place === undefined) throw new Error('warm-up order refused');
    const served = r.serve(place, { holdMs, afterMs });
    await r.run();
    await served;
  }
}

describe('Admission: the queue ahead', () => {
  it('counts a burst as it is admitted, before any order of it reaches the pool', async () => {
    const r = rig(1);
    await warm(r, 3, 100);
    // Pool 1, holds of 100 ms, 1000 ms left: order i is served from i × 100 ms, done at
    // (i + 1) × 100 ms, so orders 0..9 fit and the 11th does not.
    const admitted = Array.from({ length: 15 }, () => r.admit(1000) !== undefined);
    expect(admitted.filter(Boolean).length, 'admitted of 15').toBe(10);
    expect(admitted.slice(0, 10).every(Boolean), 'the first ten').toBe(true);
    expect(r.admission.queued).toBe(10);
    expect(r.pool.waiting + r.pool.inUse, 'none has reached the pool').toBe(0);
  });

  it('an order stops counting when its courier is granted, or when it ends without one', async () => {
    const r = rig(1);
    const a = r.admit(1000);
    const b = r.admit(1000);
    if (a === undefined || b === undefined) throw new Error('want admitted');
    expect(r.admission.queued).toBe(2);
    const permit = await r.pool.acquire();
    a.courierGranted(0);
    a.courierGranted(0);
    expect(r.admission.queued, 'granted once, counted once').toBe(1);
    b.release();
    expect(r.admission.queued, 'ended without a courier').toBe(0);
    b.courierGranted(0);
    expect(r.admission.queued, 'a grant after the end does nothing').toBe(0);
    permit.release();
    a.release();
    expect([r.admission.queued, r.admission.inflight]).toEqual([0, 0]);
  });

  it('includes the order’s own work: an order whose steps outlast the courier', async () => {
    const r = rig(1);
    // Holds of 100 ms, steps settling 150 ms after the courier: an unqueued order takes 250.
    await warm(r, 3, 100, 150);
    const first = r.admit(240);
    expect(first, 'a free courier is always taken').toBeDefined();
    // Next: its courier at 100 ms, held until 200, but its other steps take 250 ms.
    expect(r.admit(249), '249 ms left').toBeUndefined();
    expect(r.admit(250), '250 ms left').toBeDefined();
  });

  it('adds the store’s backlog to reaching the pool and recording the outcome', async () => {
    const r = rig(1);
    await warm(r, 3, 100);
    expect(r.admit(1000)).toBeDefined();
    r.setBacklog(30);
    // Served after the first (100 ms + 30 to reach it), held 100, recorded in 30.
    expect(r.admit(259)).toBeUndefined();
    expect(r.admit(260)).toBeDefined();
  });

  it('an order still on its way to the pool past its usual time needs as long again', async () => {
    const r = rig(1);
    await warm(r, 3, 100); // reaching the pool takes 0 ms
    expect(r.admit(10_000), 'a courier free').toBeDefined();
    r.tick(10);
    // The first has not reached the pool 10 ms on: 10 ms more, then 100 ms of courier, then
    // this one's 100 ms.
    expect(r.admit(209)).toBeUndefined();
    expect(r.admit(210)).toBeDefined();
  });

  it('adds three deviations of the holds’ sum to a queued prediction', async () => {
    const r = rig(1);
    // Holds of 100 and 116 ms: the mean moves to 100.5, the first deviation is 16 ms.
    await warm(r, 1, 100);
    await warm(r, 1, 116);
    expect(r.pool.holdDeviationMs).toBe(16);
    const mean = r.pool.meanHoldMs;
    expect(r.admit(10_000)).toBeDefined();
    // Queued behind one: its wait and its own hold, 2 × mean, plus 3 × 16 × √2.
    const spreadMs = 3 * 16 * Math.SQRT2;
    expect(r.admit(Math.floor(2 * mean + spreadMs))).toBeUndefined();
    expect(r.admit(Math.ceil(2 * mean + spreadMs))).toBeDefined();
  });

  it('refuses with overloaded at the in-flight bound, and admits again after a release', () => {
    const r = rig(4, { maxInflightOrders: 2 });
    const first = r.admission.admit(1000);
    const second = r.admission.admit(1000);
    const third = r.admission.admit(1000);
    expect([first.admitted, second.admitted, third.admitted]).toEqual([true, true, false]);
    expect((third as Refused).answer.error?.kind).toBe('overloaded');
    expect(r.admission.inflight, 'a refusal takes no place').toBe(2);
    expect(r.admission.overloaded, 'a refusal is not a standing queue').toBe(false);
    if (first.admitted) first.release();
    expect(r.admission.admit(1000).admitted).toBe(true);
  });

  it('refuses an order whose deadline has passed even with a courier free, always with the same answer', () => {
    const r = rig(1);
    const refusals = [r.admission.admit(0), r.admission.admit(-5)];
    expect(refusals.map((x) => x.admitted)).toEqual([false, false]);
    expect(refusals[0], 'one refusal object, no allocation').toBe(refusals[1]);
    expect(r.admission.admit(1).admitted).toBe(true);
  });
});

describe('Admission: cold start', () => {
  it('before any hold is measured, a hold lasts at least as long as the oldest courier held', async () => {
    const r = rig(1);
    const holder = r.admit(1000);
    if (holder === undefined) throw new Error('want admitted');
    const permit = await r.pool.acquire();
    holder.courierGranted(0);
    expect(r.pool.holdEstimateMs()).toBe(0);
    r.tick(600);
    expect(r.pool.holdEstimateMs(), 'held 600 ms so far').toBe(600);
    // Waits for that holder (at least 0 ms more) then holds at least 600 ms: 600 fits in 600.
    expect(r.admit(599), '599 ms left').toBeUndefined();
    expect(r.admit(600), '600 ms left').toBeDefined();
    permit.release();
    holder.release();
  });
});

describe('Admission: the margin', () => {
  it('is the worst recent excess of a courier wait over the prediction, and decays', async () => {
    const r = rig(1);
    await warm(r, 3, 100);
    expect(r.admission.marginMs(1000)).toBe(0);
    const first = r.admit(10_000);
    const second = r.admit(10_000);
    if (first === undefined || second === undefined) throw new Error('want admitted');
    // The second is predicted to wait 100 ms, the first's hold; the first holds 140.
    const served = [r.serve(first, { holdMs: 140 }), r.serve(second, { holdMs: 100 })];
    await r.run();
    await Promise.all(served);
    // Read 100 ms after it was scored (the second's hold): it halves every 30 s.
    const since = 2 ** (-100 / 30_000);
    expect(r.admission.marginMs(1000), 'the excess, whatever the prediction').toBeCloseTo(
      40 * since,
      9,
    );
    await warm(r, 700, 1);
    const margin = r.admission.marginMs(1000);
    expect(margin, 'about half after 700 orders on time').toBeGreaterThan(15);
    expect(margin).toBeLessThan(25);
    r.tick(30_000);
    expect(r.admission.marginMs(1000), 'and half again after 30 s').toBeCloseTo(margin / 2, 9);
  });

  it('scales the excess of an order queued near its deadline to each prediction', async () => {
    const r = rig(1);
    await warm(r, 3, 100);
    const first = r.admit(10_000);
    const second = r.admit(400);
    if (first === undefined || second === undefined) throw new Error('want admitted');
    // The second is predicted to wait 100 ms and be done at 200, half its 400 ms: near its
    // deadline. The first holds 110: 10 ms more, 5% of 200.
    const served = [r.serve(first, { holdMs: 110 }), r.serve(second, { holdMs: 100 })];
    await r.run();
    await Promise.all(served);
    const since = 2 ** (-100 / 30_000);
    expect(r.admission.marginMs(0), 'the peak excess').toBeCloseTo(10 * since, 9);
    expect(r.admission.marginMs(1000), '5% of a prediction of 1000 ms').toBeCloseTo(50 * since, 9);
  });

  it('does not score an order’s own work: a step held up upstream until the deadline', async () => {
    const r = rig(1);
    await warm(r, 3, 100);
    const slow = r.admit(500);
    if (slow === undefined) throw new Error('want admitted');
    // Its courier comes at once; another step holds it up until its deadline, 500 ms.
    const served = r.serve(slow, { holdMs: 100, afterMs: 400 });
    await r.run();
    await served;
    expect(r.admission.marginMs(1000)).toBe(0);
  });

  it('scores an order cut off still waiting as having waited until its deadline', async () => {
    const r = rig(1);
    await warm(r, 3, 100);
    const holder = r.admit(10_000);
    const cut = r.admit(300);
    if (holder === undefined || cut === undefined) throw new Error('want admitted');
    const permit = await r.pool.acquire();
    holder.courierGranted(0);
    // The holder keeps the courier 500 ms; the other, predicted to wait 100, is cut at 300.
    r.tick(300);
    cut.release();
    expect(r.admission.marginMs(0)).toBe(200);
    permit.release();
    holder.release();
  });
});

describe('Admission: the standing-queue cap', () => {
  it('caps the wait once every wait has stayed above the target for the window while orders are refused, and lifts once the queue is gone', async () => {
    const r = rig(1, { overloadWaitMs: 50, overloadWindowMs: 1000 });
    await warm(r, 3, 100);
    const start = r.now();
    // A burst of 20 orders of 100 ms: granted at 0, 100, ..., 1900 ms. The grant at 100 ms is
    // the first to have waited over 50 ms, so the queue stands from 1100 ms on.
    const burst = Array.from({ length: 20 }, () => r.admit(10_000));
    const served = burst.map((place) => {
      if (place === undefined) throw new Error('want admitted');
      return r.serve(place, { holdMs: 100 });
    });
    expect(await r.run(() => r.now() - start >= 1100)).toBe(true);
    expect(r.admission.overloaded, 'standing, but nothing refused').toBe(false);
    const fits = r.admit(10_000);
    if (fits === undefined) throw new Error('an order that fits is admitted');
    served.push(r.serve(fits, { holdMs: 100 }));
    // An order that cannot finish is refused: more arrive than can finish.
    expect(r.admit(500)).toBeUndefined();
    expect(r.admission.overloaded).toBe(true);
    expect(r.admission.refusedStandingQueue).toBe(0);
    // Capped: an order whose wait would be over 50 ms is refused, though it would fit.
    expect(r.admit(10_000)).toBeUndefined();
    expect(r.admission.refusedStandingQueue).toBe(1);
    await r.run();
    await Promise.all(served);
    expect(r.admission.queued).toBe(0);
    expect(r.admission.overloaded, 'nobody ahead and the courier free').toBe(false);
    expect(r.admit(10_000)).toBeDefined();
  });

  it('lifts once a window passes with no refusal, though the queue stands', async () => {
    const r = rig(1, { overloadWaitMs: 50, overloadWindowMs: 1000 });
    await warm(r, 3, 100);
    const start = r.now();
    const burst = Array.from({ length: 30 }, () => r.admit(10_000));
    const served = burst.map((place) => {
      if (place === undefined) throw new Error('want admitted');
      return r.serve(place, { holdMs: 100 });
    });
    await r.run(() => r.now() - start >= 1100);
    expect(r.admit(500)).toBeUndefined();
    expect(r.admission.overloaded).toBe(true);
    await r.run(() => r.now() - start >= 2100);
    expect(r.admission.overloaded, 'a window with no refusal').toBe(false);
    await r.run();
    await Promise.all(served);
  });

  it('a single refusal with no standing queue never sets it', async () => {
    const r = rig(1, { overloadWaitMs: 50, overloadWindowMs: 1000 });
    await warm(r, 3, 100);
    const first = r.admit(10_000);
    if (first === undefined) throw new Error('want admitted');
    expect(r.admit(50), 'cannot finish in 50 ms').toBeUndefined();
    expect(r.admission.overloaded).toBe(false);
    expect(r.admit(10_000), 'queued 100 ms: over the target, admitted').toBeDefined();
  });

  it('a burst the couriers clear within the window never sets it', async () => {
    const r = rig(5, { overloadWaitMs: 50, overloadWindowMs: 1000 });
    await warm(r, 3, 100);
    const burst = Array.from({ length: 50 }, () => r.admit(2000));
    expect(burst.filter((p) => p !== undefined).length).toBe(50);
    const served = burst.map((place) => {
      if (place === undefined) throw new Error('want admitted');
      return r.serve(place, { holdMs: 100 });
    });
    await r.run();
    await Promise.all(served);
    expect(r.admission.overloaded).toBe(false);
    expect(r.admission.refused.overloaded).toBe(0);
  });
});

describe('MeasuredPool', () => {
  it('estimates what each holder has left from its age and the mean hold, oldest first', async () => {
    let clock = 0;
    const pool = new MeasuredPool(new Semaphore(3), { now: () => clock });
    expect(pool.position(2), 'a slot free behind 2').toBeLessThan(0);
    expect(pool.holdEstimateMs(), 'nothing held, nothing measured').toBe(0);
    const first = await pool.acquire();
    clock = 10;
    first.release();
    expect([pool.meanHoldMs, pool.holdsMeasured]).toEqual([10, true]);
    const held = [await pool.acquire()];
    clock = 13;
    held.push(await pool.acquire());
    clock = 14;
    held.push(await pool.acquire());
    // Ages 4, 1 and 0 ms: 6, 9 and 10 ms left.
    expect([0, 1, 2].map((rank) => pool.residualMs(rank, 10))).toEqual([6, 9, 10]);
    expect([pool.position(0), pool.position(4)]).toEqual([0, 4]);
    // The middle one done out of turn: the others are interpolated between the ends.
    held[1]?.release();
    clock = 20;
    expect([0, 1].map((rank) => pool.residualMs(rank, 10))).toEqual([0, 4]);
    held[0]?.release();
    held[2]?.release();
    expect([pool.inUse, pool.holding]).toEqual([0, 0]);
  });

  it('tells who was granted a slot and how long it waited in the pool', async () => {
    let clock = 0;
    const grants: [unknown, number][] = [];
    const pool = new MeasuredPool(new Semaphore(1), {
      now: () => clock,
      granted: (cancel, waitedMs) => grants.push([cancel, waitedMs]),
    });
    const first = new CancelSource();
    const second = new CancelSource();
    const held = await pool.acquire(first);
    const waiting = pool.acquire(second);
    expect(pool.acquiring).toBe(1);
    clock = 7;
    held.release();
    (await waiting).release();
    expect(grants).toEqual([
      [first, 0],
      [second, 7],
    ]);
    expect(pool.acquiring).toBe(0);
  });

  it('releasing a permit twice throws, as the pool it wraps does, and counts it once', async () => {
    const pool = new MeasuredPool(new Semaphore(1));
    const permit = await pool.acquire();
    permit.release();
    expect(() => {
      permit.release();
    }).toThrow();
    expect([pool.inUse, pool.holding]).toEqual([0, 0]);
  });

  it('an aborted acquire is no longer counted as acquiring', async () => {
    const pool = new MeasuredPool(new Semaphore(1));
    const held = await pool.acquire();
    const cancel = new CancelSource();
    const waiting = pool.acquire(cancel);
    cancel.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect([pool.acquiring, pool.waiting]).toEqual([0, 0]);
    held.release();
  });
});
