import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { CancelSource, link } from '../../src/core/cancellation.js';

describe('CancelSource', () => {
  it('aborts once: the first reason is kept and later aborts return false', () => {
    const source = new CancelSource();
    const first = new Error('first');
    expect(source.aborted, 'aborted before abort').toBe(false);
    expect(source.reason, 'reason before abort').toBeUndefined();
    expect(source.abort(first), 'first abort returns').toBe(true);
    expect(source.abort(new Error('second')), 'second abort returns').toBe(false);
    expect(source.aborted, 'aborted after abort').toBe(true);
    expect(source.reason, 'reason after two aborts').toBe(first);
    expect(() => {
      source.throwIfAborted();
    }).toThrow(first);
  });

  it('throwIfAborted does nothing before the abort', () => {
    expect(() => {
      new CancelSource().throwIfAborted();
    }).not.toThrow();
  });

  it('calls each listener once, in registration order, with the reason', () => {
    const source = new CancelSource();
    const calls: string[] = [];
    const reasons: unknown[] = [];
    for (const name of ['a', 'b', 'c']) {
      source.onAbort((reason) => {
        calls.push(name);
        reasons.push(reason);
      });
    }
    const reason = new Error('stop');
    source.abort(reason);
    source.abort(new Error('again'));
    expect(calls, 'listener calls').toEqual(['a', 'b', 'c']);
    expect(reasons, 'reasons seen').toEqual([reason, reason, reason]);
    expect(source.listenerCount, 'listeners left after abort').toBe(0);
  });

  it('registers the same function once, as EventTarget does', () => {
    const source = new CancelSource();
    const listener = vi.fn();
    source.onAbort(listener);
    source.onAbort(listener);
    expect(source.listenerCount).toBe(1);
    source.abort('x');
    expect(listener).toHaveBeenCalledTimes(1);
  });

  it('a removed listener is never called and the count goes back to zero', () => {
    const source = new CancelSource();
    const removed = vi.fn();
    const kept = vi.fn();
    const remove = source.onAbort(removed);
    source.onAbort(kept);
    expect(source.listenerCount, 'after two onAbort').toBe(2);
    remove();
    remove(); // a second call does nothing
    expect(source.listenerCount, 'after remove').toBe(1);
    source.abort('x');
    expect(removed).not.toHaveBeenCalled();
    expect(kept).toHaveBeenCalledOnce();
    remove(); // after the abort, still nothing
    expect(source.listenerCount, 'after abort').toBe(0);
  });

  it('onAbort after the abort is never called and returns a harmless remover', () => {
    const source = new CancelSource();
    source.abort('x');
    const listener = vi.fn();
    const remove = source.onAbort(listener);
    expect(source.listenerCount).toBe(0);
    remove();
    source.abort('y');
    expect(listener).not.toHaveBeenCalled();
  });

  it('a throwing listener does not stop the others; its error is re-thrown asynchronously', async () => {
    const source = new CancelSource();
    const boom = new Error('listener failed');
    const after = vi.fn();
    source.onAbort(() => {
      throw boom;
    });
    source.onAbort(after);
    const seen: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      seen.push(error);
    };
    // queueMicrotask re-throws as an uncaught exception: catch it here so the run stays green.
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    try {
      expect(() => source.abort('x')).not.toThrow();
      expect(after).toHaveBeenCalledOnce();
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const listener of listeners) process.on('uncaughtException', listener);
    }
    expect(seen, 'errors re-thrown').toEqual([boom]);
  });

  it('dispose drops listeners without calling them', () => {
    const source = new CancelSource();
    const listener = vi.fn();
    source.onAbort(listener);
    source.dispose();
    expect(source.listenerCount).toBe(0);
    source.abort('x');
    expect(listener).not.toHaveBeenCalled();
  });

  describe('signal', () => {
    it('is created lazily and aborts with the same reason', () => {
      const source = new CancelSource();
      const signal = source.signal;
      expect(source.signal, 'second read').toBe(signal);
      expect(signal.aborted, 'signal before abort').toBe(false);
      const reason = new Error('stop');
      const onAbort = vi.fn();
      signal.addEventListener('abort', onAbort);
      source.abort(reason);
      expect(signal.aborted, 'signal after abort').toBe(true);
      expect(signal.reason, 'signal reason').toBe(reason);
      expect(onAbort).toHaveBeenCalledOnce();
    });

    it('read after the abort is already aborted with the same reason', () => {
      const source = new CancelSource();
      const reason = new Error('early');
      source.abort(reason);
      const signal = source.signal;
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toBe(reason);
      expect(source.signal, 'second read').toBe(signal);
    });
  });
});

describe('link', () => {
  it('aborts the source with an AbortSignal parent’s reason and removes its listener', () => {
    const parent = new AbortController();
    const source = new CancelSource();
    link(parent.signal, source);
    expect(getEventListeners(parent.signal, 'abort').length, 'listeners while linked').toBe(1);
    const reason = new Error('deadline');
    parent.abort(reason);
    expect(source.aborted).toBe(true);
    expect(source.reason).toBe(reason);
    expect(getEventListeners(parent.signal, 'abort').length, 'listeners after abort').toBe(0);
  });

  it('the remover takes its listener off an AbortSignal parent', () => {
    const parent = new AbortController();
    const source = new CancelSource();
    const unlink = link(parent.signal, source);
    unlink();
    expect(getEventListeners(parent.signal, 'abort').length).toBe(0);
    parent.abort('late');
    expect(source.aborted, 'source aborted after unlink').toBe(false);
  });

  it('aborts the source with a Cancellation parent’s reason; the remover takes its listener off', () => {
    const parent = new CancelSource();
    const linked = new CancelSource();
    const unlinked = new CancelSource();
    link(parent, linked);
    const unlink = link(parent, unlinked);
    expect(parent.listenerCount, 'listeners while linked').toBe(2);
    unlink();
    expect(parent.listenerCount, 'listeners after one unlink').toBe(1);
    parent.abort('bye');
    expect(linked.reason, 'linked reason').toBe('bye');
    expect(unlinked.aborted, 'unlinked aborted').toBe(false);
    expect(parent.listenerCount, 'listeners after abort').toBe(0);
  });

  it.each([
    ['AbortSignal', (): AbortSignal => AbortSignal.abort('gone')],
    [
      'Cancellation',
      (): CancelSource => {
        const parent = new CancelSource();
        parent.abort('gone');
        return parent;
      },
    ],
  ])('an already aborted %s parent aborts the source at once', (_, makeParent) => {
    const source = new CancelSource();
    const unlink = link(makeParent(), source);
    expect(source.aborted).toBe(true);
    expect(source.reason).toBe('gone');
    unlink();
  });

  it('unlinking after a source is aborted by another path leaves no listener', () => {
    const parent = new AbortController();
    const source = new CancelSource();
    const unlink = link(parent.signal, source);
    source.abort('own');
    unlink();
    expect(getEventListeners(parent.signal, 'abort').length).toBe(0);
  });
});
