import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  relayClusterViews,
  WorkerClusterViews,
  type ClusterView,
  type PrimaryLink,
  type WorkerGroup,
  type WorkerLink,
} from '../../src/observability/cluster-views.js';
import { deferred, promiseState } from '../helpers.js';

// A primary and its workers in one process: messages cross as JSON, as over node:cluster's
// channel, one microtask later (fake timers leave microtasks alone, so the tests move the
// clock and the messages still flow).

interface FakeWorker {
  readonly id: number;
  readonly views: WorkerClusterViews;
  readonly inbox: EventEmitter;
  alive: boolean;
}

interface FakeCluster {
  readonly workers: FakeWorker[];
  readonly primary: EventEmitter;
  /** listen tells the primary that `worker` serves (it listens). */
  listen(worker: FakeWorker): void;
  /** kill makes `worker` exit: its channel closes and the primary hears of it. */
  kill(worker: FakeWorker): void;
  /** stop stops the relay and closes every worker's views. */
  stop(): void;
}

const viaChannel = (message: object): unknown => JSON.parse(JSON.stringify(message));

const partTimeoutMs = 100;
const gatherTimeoutMs = 300;

function fakeCluster(
  count: number,
  options: { relay?: boolean; listening?: boolean } = {},
): FakeCluster {
  const primary = new EventEmitter();
  const workers: FakeWorker[] = [];
  const links = new Map<number, WorkerLink>();
  const deliver = (alive: () => boolean, emit: () => void, done: (e: Error | null) => void) => {
    queueMicrotask(() => {
      if (!alive()) {
        done(new Error('channel closed'));
        return;
      }
      emit();
      done(null);
    });
  };
  for (let id = 1; id <= count; id++) {
    const inbox = new EventEmitter();
    const isAlive = (): boolean => workers[id - 1]?.alive === true;
    const toWorker: WorkerLink = {
      id,
      send: (message, done) => {
        deliver(isAlive, () => inbox.emit('message', viaChannel(message)), done);
      },
    };
    links.set(id, toWorker);
    const toPrimary: PrimaryLink = {
      send: (message, done) => {
        deliver(isAlive, () => primary.emit('message', toWorker, viaChannel(message)), done);
      },
      on: (event, listener) => inbox.on(event, listener),
      off: (event, listener) => inbox.off(event, listener),
    };
    workers.push({
      id,
      inbox,
      alive: true,
      views: new WorkerClusterViews({ link: toPrimary, timeoutMs: gatherTimeoutMs }),
    });
  }
  const group: WorkerGroup = {
    connected: () => workers.filter((w) => w.alive).flatMap((w) => links.get(w.id) ?? []),
    onMessage(listener) {
      primary.on('message', listener);
      return () => primary.off('message', listener);
    },
    onListening(listener) {
      primary.on('listening', listener);
      return () => primary.off('listening', listener);
    },
    onExit(listener) {
      primary.on('exit', listener);
      return () => primary.off('exit', listener);
    },
  };
  const stopRelay =
    options.relay === false
      ? () => undefined
      : relayClusterViews({ workers: group, timeoutMs: partTimeoutMs });
  for (const worker of workers)
    if (options.listening !== false) primary.emit('listening', links.get(worker.id));
  return {
    workers,
    primary,
    listen(worker) {
      primary.emit('listening', links.get(worker.id));
    },
    kill(worker) {
      worker.alive = false;
      worker.views.close();
      primary.emit('exit', links.get(worker.id));
    },
    stop() {
      stopRelay();
      for (const worker of workers) worker.views.close();
    },
  };
}

const numbers: ClusterView<number> = {
  name: 'numbers',
  isPart: (value): value is number => typeof value === 'number',
};

/** serveIds makes every worker of `fake` serve its own id as its part of {@link numbers}. */
function serveIds(fake: FakeCluster): void {
  for (const worker of fake.workers) worker.views.serve(numbers, () => worker.id);
}

const sorted = (parts: readonly number[]): number[] => [...parts].sort((a, b) => a - b);

let current: FakeCluster | undefined;
function start(count: number, options?: { relay?: boolean; listening?: boolean }): FakeCluster {
  current = fakeCluster(count, options);
  return current;
}

afterEach(() => {
  current?.stop();
  current = undefined;
  vi.useRealTimers();
});

describe('WorkerClusterViews and relayClusterViews', () => {
  it("gather answers with every worker's part, the asker's too, each once", async () => {
    const fake = start(3);
    serveIds(fake);
    const got = await fake.workers[1]!.views.gather(numbers);
    expect(sorted(got.parts)).toStrictEqual([1, 2, 3]);
    expect(got.missing).toBe(0);
  });

  it('concurrent gathers of different views from different workers do not mix', async () => {
    const fake = start(2);
    serveIds(fake);
    const words: ClusterView<string> = {
      name: 'words',
      isPart: (value): value is string => typeof value === 'string',
    };
    for (const worker of fake.workers) worker.views.serve(words, () => `w${worker.id}`);
    const [a, b, c] = await Promise.all([
      fake.workers[0]!.views.gather(numbers),
      fake.workers[1]!.views.gather(words),
      fake.workers[0]!.views.gather(words),
    ]);
    expect(sorted(a.parts)).toStrictEqual([1, 2]);
    expect([...b.parts].sort()).toStrictEqual(['w1', 'w2']);
    expect([...c.parts].sort()).toStrictEqual(['w1', 'w2']);
  });

  it('a worker that does not answer is missing once the primary has waited its timeout, not before', async () => {
    vi.useFakeTimers();
    const fake = start(3);
    const hung = deferred<number>();
    fake.workers[0]!.views.serve(numbers, () => 1);
    fake.workers[1]!.views.serve(numbers, () => 2);
    fake.workers[2]!.views.serve(numbers, () => hung.promise);
    const gathering = fake.workers[0]!.views.gather(numbers);
    await vi.advanceTimersByTimeAsync(partTimeoutMs - 1);
    expect(await promiseState(gathering)).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    const got = await gathering;
    expect(sorted(got.parts)).toStrictEqual([1, 2]);
    expect(got.missing).toBe(1);
    // Its late part is dropped: no gather waits for it any more.
    hung.resolve(3);
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a worker that exits during a gather is missing at once, without waiting for the timeout', async () => {
    vi.useFakeTimers();
    const fake = start(3);
    const hung = deferred<number>();
    fake.workers[0]!.views.serve(numbers, () => 1);
    fake.workers[1]!.views.serve(numbers, () => 2);
    const dying = fake.workers[2]!;
    dying.views.serve(numbers, () => hung.promise);
    const gathering = fake.workers[0]!.views.gather(numbers);
    await vi.advanceTimersByTimeAsync(0);
    fake.kill(dying);
    const got = await gathering;
    expect(sorted(got.parts)).toStrictEqual([1, 2]);
    expect(got.missing).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a worker whose provider throws, that serves no such view, or sends what the view refuses is missing at once', async () => {
    vi.useFakeTimers();
    const fake = start(4);
    fake.workers[0]!.views.serve(numbers, () => 1);
    fake.workers[1]!.views.serve(numbers, () => {
      throw new Error('broken');
    });
    // workers[2] serves nothing.
    const anything: ClusterView<unknown> = {
      name: numbers.name,
      isPart: (value): value is unknown => value !== undefined,
    };
    fake.workers[3]!.views.serve(anything, () => 'not a number');
    const got = await fake.workers[0]!.views.gather(numbers);
    expect(got.parts).toStrictEqual([1]);
    expect(got.missing).toBe(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a gather the primary does not answer rejects after the worker’s own timeout', async () => {
    vi.useFakeTimers();
    const fake = start(2, { relay: false });
    serveIds(fake);
    const gathering = fake.workers[0]!.views.gather(numbers);
    const failed = expect(gathering).rejects.toThrow(
      `the primary did not answer for numbers within ${gatherTimeoutMs} ms`,
    );
    await vi.advanceTimersByTimeAsync(gatherTimeoutMs - 1);
    expect(await promiseState(gathering)).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    await failed;
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a worker still starting (it has not listened) is not asked, nor missing', async () => {
    vi.useFakeTimers();
    const fake = start(2, { listening: false });
    serveIds(fake);
    const [first, second] = fake.workers as [FakeWorker, FakeWorker];
    fake.listen(first);
    // Answered at once: nobody else is waited for.
    expect(await first.views.gather(numbers)).toStrictEqual({ parts: [1], missing: 0 });
    fake.listen(second);
    const got = await first.views.gather(numbers);
    expect(sorted(got.parts)).toStrictEqual([1, 2]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a gather whose message cannot be sent rejects at once', async () => {
    const fake = start(2);
    serveIds(fake);
    const worker = fake.workers[0]!;
    worker.alive = false;
    await expect(worker.views.gather(numbers)).rejects.toThrow('channel closed');
  });

  it('close rejects the gathers waiting, refuses new ones, and removes every listener and timer', async () => {
    vi.useFakeTimers();
    const fake = start(2);
    const hung = deferred<number>();
    fake.workers[0]!.views.serve(numbers, () => 1);
    fake.workers[1]!.views.serve(numbers, () => hung.promise);
    const gathering = fake.workers[0]!.views.gather(numbers);
    const closed = expect(gathering).rejects.toThrow('the cluster views were closed');
    await vi.advanceTimersByTimeAsync(0);
    fake.stop();
    await closed;
    await expect(fake.workers[0]!.views.gather(numbers)).rejects.toThrow(
      'the cluster views are closed',
    );
    expect(fake.primary.listenerCount('message')).toBe(0);
    expect(fake.primary.listenerCount('exit')).toBe(0);
    expect(fake.primary.listenerCount('listening')).toBe(0);
    for (const worker of fake.workers) expect(worker.inbox.listenerCount('message')).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('serve refuses a view served already; the function it returns stops serving', async () => {
    const fake = start(1);
    const views = fake.workers[0]!.views;
    const stop = views.serve(numbers, () => 1);
    expect(() => views.serve(numbers, () => 2)).toThrow(TypeError);
    stop();
    expect(await views.gather(numbers)).toStrictEqual({ parts: [], missing: 1 });
    views.serve(numbers, () => 2);
    expect(await views.gather(numbers)).toStrictEqual({ parts: [2], missing: 0 });
  });

  it('refuses timeouts that are not positive numbers', () => {
    for (const timeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new WorkerClusterViews({ timeoutMs, link: idleLink })).toThrow(RangeError);
      expect(() => relayClusterViews({ timeoutMs, workers: idleGroup })).toThrow(RangeError);
    }
  });
});

const idleLink: PrimaryLink = { send: () => undefined, on: () => undefined, off: () => undefined };
const idleGroup: WorkerGroup = {
  connected: () => [],
  onMessage: () => () => undefined,
  onListening: () => () => undefined,
  onExit: () => () => undefined,
};
