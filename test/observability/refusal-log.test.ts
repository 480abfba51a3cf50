import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RefusalLog } from '../../src/observability/refusal-log.js';
import { capturingLogger } from '../helpers.js';

describe('RefusalLog', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** refusalLog is a log of 1 s windows and the lines it wrote. */
  function refusalLog(): { refusals: RefusalLog; lines: Record<string, unknown>[] } {
    const { logger, lines } = capturingLogger();
    return { refusals: new RefusalLog(logger, 1000), lines };
  }

  it.each([0, -1, Number.NaN, Infinity])('rejects a window of %s', (windowMs) => {
    expect(() => new RefusalLog(pino({ level: 'silent' }), windowMs)).toThrow(RangeError);
  });

  it('writes one line per window with the count, none for an empty window', () => {
    const { refusals, lines } = refusalLog();
    refusals.count();
    refusals.count();
    vi.advanceTimersByTime(999);
    expect(lines).toEqual([]);
    refusals.count();
    vi.advanceTimersByTime(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 40,
      msg: 'orders refused as overloaded',
      kind: 'overloaded',
      refused: 3,
      window_ms: 1000,
    });
    vi.advanceTimersByTime(5000);
    expect(lines, 'no refusal, no line').toHaveLength(1);
    refusals.count();
    vi.advanceTimersByTime(1000);
    expect(lines.map((line) => line['refused'])).toEqual([3, 1]);
    expect(vi.getTimerCount(), 'no window left open').toBe(0);
  });

  it('close writes what is pending at once and leaves no timer', () => {
    const { refusals, lines } = refusalLog();
    refusals.count();
    refusals.close();
    expect(lines.map((line) => line['refused'])).toEqual([1]);
    expect(vi.getTimerCount()).toBe(0);
    refusals.close();
    expect(lines, 'nothing pending: no line').toHaveLength(1);
  });
});
