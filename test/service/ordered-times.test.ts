import { describe, expect, it } from 'vitest';
import { OrderedTimes } from '../../src/service/ordered-times.js';

describe('OrderedTimes', () => {
  it('answers the k-th oldest time exactly while times leave oldest first', () => {
    const times = new OrderedTimes();
    const entries = [10, 20, 30, 40].map((t) => times.add(t));
    expect([0, 1, 2, 3].map((k) => times.nth(k))).toEqual([10, 20, 30, 40]);
    times.remove(entries[0]!);
    times.remove(entries[0]!);
    expect(times.size, 'removing twice counts once').toBe(3);
    expect([times.oldest(), times.newest(), times.nth(1)]).toEqual([20, 40, 30]);
    expect([times.nth(-1), times.nth(3)], 'out of range').toEqual([Number.NaN, Number.NaN]);
  });

  it('interpolates between the oldest and the newest once one left out of turn', () => {
    const times = new OrderedTimes();
    const entries = [0, 10, 11, 30].map((t) => times.add(t));
    times.remove(entries[1]!);
    expect([0, 1, 2].map((k) => times.nth(k))).toEqual([0, 15, 30]);
    times.remove(entries[3]!);
    expect([times.newest(), times.nth(1)], 'the newest left: exact again').toEqual([11, 11]);
  });

  it('keeps at most about twice what is in, whichever order times leave in', () => {
    const times = new OrderedTimes();
    const live = [];
    for (let t = 0; t < 10_000; t++) {
      live.push(times.add(t));
      // Each time, the oldest but one leaves: entries die behind the head and in the middle.
      if (live.length > 5) times.remove(live.splice(1, 1)[0]!);
      if (t % 7 === 0 && live.length > 5) times.remove(live.shift()!);
    }
    expect(times.size).toBe(live.length);
    expect(times.retained, 'entries held').toBeLessThanOrEqual(2 * times.size + 17);
    expect(times.nth(0)).toBe(live[0]!.time);
  });
});
