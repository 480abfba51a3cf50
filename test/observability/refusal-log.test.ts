import pino from 'pino';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RefusalLog } from '../../src/observability/refusal-log.js';

function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text !== '') lines.push(JSON.parse(text) as Record<string, unknown>);
      }
      callback();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

describe('RefusalLog', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([0, -1, Number.NaN, Infinity])('rejects a window of %s', (windowMs) => {
    expect(() => new RefusalLog(pino({ level: 'silent' }), windowMs)).toThrow(RangeError);
  });

  it('writes one line per window with the count, none for an empty window', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { log, lines } = capture();
    const refusals = new RefusalLog(log, 1000);
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
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { log, lines } = capture();
    const refusals = new RefusalLog(log, 1000);
    refusals.count();
    refusals.close();
    expect(lines.map((line) => line['refused'])).toEqual([1]);
    expect(vi.getTimerCount()).toBe(0);
    refusals.close();
    expect(lines, 'nothing pending: no line').toHaveLength(1);
  });
});
