import { describe, expect, it } from 'vitest';
import { Tracker } from '../../src/core/tracker.js';

describe('Tracker', () => {
  it('starts at zero', () => {
    const tracker = new Tracker();
    expect([tracker.active, tracker.peak, tracker.started]).toEqual([0, 0, 0]);
  });

  it.each([
    // enter (+) and leave (-) sequences, with the active, peak and started counts they leave
    { ops: '+', active: 1, peak: 1, started: 1 },
    { ops: '+-', active: 0, peak: 1, started: 1 },
    { ops: '+++--', active: 1, peak: 3, started: 3 },
    { ops: '+-+-+-', active: 0, peak: 1, started: 3 },
    { ops: '++-++---', active: 0, peak: 3, started: 4 },
  ])(
    '$ops leaves active $active, peak $peak, started $started',
    ({ ops, active, peak, started }) => {
      const tracker = new Tracker();
      for (const op of ops) {
        if (op === '+') tracker.enter();
        else tracker.leave();
      }
      expect(tracker.active, 'active').toBe(active);
      expect(tracker.peak, 'peak').toBe(peak);
      expect(tracker.started, 'started').toBe(started);
    },
  );

  it('leaving more than was entered throws a RangeError and leaves the count at zero', () => {
    const tracker = new Tracker();
    expect(() => {
      tracker.leave();
    }).toThrow(RangeError);
    tracker.enter();
    tracker.leave();
    expect(() => {
      tracker.leave();
    }).toThrow(RangeError);
    expect(tracker.active).toBe(0);
  });
});
