import cluster, { type Worker } from 'node:cluster';

/**
 * ClusterView names one kind of state that every worker holds a part of (its metrics, its
 * dashboard state), and checks a part that arrives from another process.
 */
export interface ClusterView<Part> {
  readonly name: string;
  /** isPart narrows what a worker sent; a part it refuses counts as missing. */
  isPart(value: unknown): value is Part;
}

/** Gathered is a view's parts from the workers that answered in time, and how many did not. */
export interface Gathered<Part> {
  readonly parts: readonly Part[];
  /** Workers asked that did not answer in time, exited meanwhile, failed, or sent no part. */
  readonly missing: number;
}

/**
 * ClusterViews is what a worker of `WORKERS=N` uses to answer for every worker at once:
 * {@link gather} collects a view's parts from all of them (itself included), through the
 * primary; {@link serve} provides this worker's own part when another one gathers.
 */
export interface ClusterViews {
  /**
   * gather asks the primary for every worker's part of `view`. Resolves with the parts that
   * came in time, and how many workers are missing (slow, dead, failed, or whose part
   * `view.isPart` refused). Rejects if the primary does not answer within the timeout, or
   * once the views are closed.
   */
  gather<Part>(view: ClusterView<Part>): Promise<Gathered<Part>>;
  /**
   * serve answers the primary's requests for `view` with `provide()`; a provider that throws
   * or rejects makes this worker missing from that gather. Returns the function that stops
   * serving. Throws a TypeError if `view` is already served.
   */
  serve<Part>(view: ClusterView<Part>, provide: () => Part | Promise<Part>): () => void;
}

/** How long the primary waits for the workers' parts of a gather. */
export const partTimeoutMs = 1000;
/** How long a worker waits for the primary's answer: the primary's wait and some slack. */
export const gatherTimeoutMs = partTimeoutMs + 1000;

// Messages, every one tagged so that other users of the IPC channel are left alone:
//   worker → primary      gather   { id, view }           a worker asks for every part
//   primary → each worker collect  { id, view }           the primary asks for one part
//   worker → primary      part     { id, ok, part? }      a worker's part (ok false: none)
//   primary → worker      gathered { id, parts, missing } the answer to the gather `id`
const gatherType = 'order-pipeline:gather';
const collectType = 'order-pipeline:collect';
const partType = 'order-pipeline:part';
const gatheredType = 'order-pipeline:gathered';

/** PrimaryLink is a worker's IPC channel to the primary (the process's own, in production). */
export interface PrimaryLink {
  /** send sends `message`; `done` is called with the error if it could not be. */
  send(message: object, done: (error: Error | null) => void): void;
  on(event: 'message', listener: (message: unknown) => void): void;
  off(event: 'message', listener: (message: unknown) => void): void;
}

/** processLink is this process's IPC channel to its parent, as a {@link PrimaryLink}. */
export function processLink(): PrimaryLink {
  return {
    send(message, done) {
      if (process.send === undefined) done(new Error('this process has no IPC channel'));
      else process.send(message, undefined, {}, done);
    },
    on: (event, listener) => process.on(event, listener),
    off: (event, listener) => process.off(event, listener),
  };
}

export interface WorkerClusterViewsOptions {
  /** How long {@link WorkerClusterViews.gather} waits for the primary; {@link gatherTimeoutMs}. */
  readonly timeoutMs?: number;
  /** The channel to the primary; this process's own ({@link processLink}) by default. */
  readonly link?: PrimaryLink;
}

interface PendingGather {
  readonly timer: NodeJS.Timeout;
  answer(parts: readonly unknown[], missing: number): void;
  fail(error: Error): void;
}

/**
 * WorkerClusterViews is a worker's {@link ClusterViews}, over its IPC channel to a primary
 * that runs {@link relayClusterViews}. It listens on the channel from construction until
 * {@link close}.
 */
export class WorkerClusterViews implements ClusterViews {
  readonly timeoutMs: number;
  readonly #link: PrimaryLink;
  readonly #providers = new Map<string, () => unknown>();
  readonly #pending = new Map<number, PendingGather>();
  #nextId = 0;
  #closed = false;
  readonly #onMessage = (message: unknown): void => {
    if (!isRecord(message)) return;
    const id = message['id'];
    if (typeof id !== 'number') return;
    if (message['type'] === collectType && typeof message['view'] === 'string') {
      this.#provide(id, message['view']);
    } else if (message['type'] === gatheredType) {
      const pending = this.#pending.get(id);
      if (pending === undefined) return;
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      const { parts, missing } = message;
      if (!Array.isArray(parts) || typeof missing !== 'number') {
        pending.fail(new Error('the primary answered a gather with a malformed message'));
      } else {
        pending.answer(parts, missing);
      }
    }
  };

  /** A timeout that is not a positive finite number throws a RangeError. */
  constructor(options: WorkerClusterViewsOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? gatherTimeoutMs;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) {
      throw new RangeError(`timeoutMs must be a positive number, got ${this.timeoutMs}`);
    }
    this.#link = options.link ?? processLink();
    this.#link.on('message', this.#onMessage);
  }

  gather<Part>(view: ClusterView<Part>): Promise<Gathered<Part>> {
    if (this.#closed) return Promise.reject(new Error('the cluster views are closed'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const fail = (error: Error): void => {
        if (this.#pending.get(id) !== pending) return;
        this.#pending.delete(id);
        clearTimeout(pending.timer);
        reject(error);
      };
      const pending: PendingGather = {
        timer: setTimeout(() => {
          fail(
            new Error(`the primary did not answer for ${view.name} within ${this.timeoutMs} ms`),
          );
        }, this.timeoutMs),
        answer(parts, missing) {
          const checked = parts.filter((part) => view.isPart(part));
          resolve({ parts: checked, missing: missing + parts.length - checked.length });
        },
        fail,
      };
      this.#pending.set(id, pending);
      this.#link.send({ type: gatherType, id, view: view.name }, (error) => {
        if (error !== null) fail(error);
      });
    });
  }

  serve<Part>(view: ClusterView<Part>, provide: () => Part | Promise<Part>): () => void {
    if (this.#providers.has(view.name)) {
      throw new TypeError(`the view ${view.name} is already served`);
    }
    this.#providers.set(view.name, provide);
    return () => {
      if (this.#providers.get(view.name) === provide) this.#providers.delete(view.name);
    };
  }

  /**
   * close stops listening on the channel and serving; every gather still waiting rejects.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link.off('message', this.#onMessage);
    this.#providers.clear();
    for (const pending of [...this.#pending.values()]) {
      pending.fail(new Error('the cluster views were closed'));
    }
  }

  /** #provide answers the collect `id` with this worker's part of `view`, or with none. */
  #provide(id: number, view: string): void {
    const provide = this.#providers.get(view);
    const reply = (message: object): void => {
      // Not sent: the primary counts this worker missing when its wait ends.
      this.#link.send(message, () => undefined);
    };
    if (provide === undefined) {
      reply({ type: partType, id, ok: false });
      return;
    }
    new Promise((resolve) => {
      resolve(provide());
    }).then(
      (part) => {
        reply({ type: partType, id, ok: true, part });
      },
      () => {
        reply({ type: partType, id, ok: false });
      },
    );
  }
}

/**
 * clusterViewsOf is this process's {@link WorkerClusterViews} when it is one of the `workers`
 * of a primary (which relays, see {@link relayClusterViews}), else undefined: a process
 * alone, or `workers` 1, answers for itself.
 */
export function clusterViewsOf(workers: number): WorkerClusterViews | undefined {
  return workers > 1 && cluster.isWorker ? new WorkerClusterViews() : undefined;
}

/** WorkerLink is the primary's IPC channel to one worker. */
export interface WorkerLink {
  readonly id: number;
  /** send sends `message`; `done` is called with the error if it could not be. */
  send(message: object, done: (error: Error | null) => void): void;
}

/** WorkerGroup is what the primary sees of its workers (node:cluster's, in production). */
export interface WorkerGroup {
  /** The workers whose channel is open now. */
  connected(): Iterable<WorkerLink>;
  /** onMessage listens to every worker's messages; returns the function that stops it. */
  onMessage(listener: (from: WorkerLink, message: unknown) => void): () => void;
  /** onListening listens for workers that start serving; returns the function that stops it. */
  onListening(listener: (worker: WorkerLink) => void): () => void;
  /** onExit listens for workers exiting; returns the function that stops it. */
  onExit(listener: (worker: WorkerLink) => void): () => void;
}

/** clusterWorkers is node:cluster's workers as a {@link WorkerGroup}. */
export function clusterWorkers(): WorkerGroup {
  const link = (worker: Worker): WorkerLink => ({
    id: worker.id,
    send(message, done) {
      worker.send(message, undefined, {}, done);
    },
  });
  return {
    connected: () =>
      Object.values(cluster.workers ?? {}).flatMap((worker) =>
        worker?.isConnected() === true ? [link(worker)] : [],
      ),
    onMessage(listener) {
      const onMessage = (worker: Worker, message: unknown): void => {
        listener(link(worker), message);
      };
      cluster.on('message', onMessage);
      return () => cluster.off('message', onMessage);
    },
    onListening(listener) {
      const onListening = (worker: Worker): void => {
        listener(link(worker));
      };
      cluster.on('listening', onListening);
      return () => cluster.off('listening', onListening);
    },
    onExit(listener) {
      const onExit = (worker: Worker): void => {
        listener(link(worker));
      };
      cluster.on('exit', onExit);
      return () => cluster.off('exit', onExit);
    },
  };
}

export interface RelayOptions {
  /** How long to wait for the workers' parts of one gather; {@link partTimeoutMs}. */
  readonly timeoutMs?: number;
  /** The workers; node:cluster's ({@link clusterWorkers}) by default. */
  readonly workers?: WorkerGroup;
}

/** Collection is one gather the primary is running: who asked, who has yet to answer. */
interface Collection {
  readonly requester: WorkerLink;
  readonly requestId: number;
  readonly waitingFor: Set<number>;
  readonly parts: unknown[];
  missing: number;
  readonly timer: NodeJS.Timeout;
}

/**
 * relayClusterViews runs in the primary of `WORKERS=N`, started before the workers: when a
 * worker gathers a view, it asks every worker that serves (it has listened, and its channel
 * is open; the asker too) for its part, and answers the asker with the parts that came. A
 * worker still starting has served nothing and is not asked. The relay answers as soon as
 * every worker asked has answered or exited, and at the latest after `timeoutMs`, without
 * the parts still missing: a slow or dead worker delays a gather by at most that, never
 * hangs it. The primary only relays: it never reads the parts. A timeout that is not a
 * positive finite number throws a RangeError. Returns the function that stops relaying: its
 * listeners are removed and its timers cleared.
 */
export function relayClusterViews(options: RelayOptions = {}): () => void {
  const timeoutMs = options.timeoutMs ?? partTimeoutMs;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  }
  const workers = options.workers ?? clusterWorkers();
  const collections = new Map<number, Collection>();
  const serving = new Set<number>();
  let nextId = 0;

  const finish = (id: number): void => {
    const collection = collections.get(id);
    if (collection === undefined) return;
    collections.delete(id);
    clearTimeout(collection.timer);
    const { requester, requestId, parts, waitingFor } = collection;
    const missing = collection.missing + waitingFor.size;
    // The asker may have exited meanwhile: then nobody waits for the answer.
    requester.send({ type: gatheredType, id: requestId, parts, missing }, () => undefined);
  };
  const settle = (id: number, workerId: number, part: { ok: boolean; part?: unknown }): void => {
    const collection = collections.get(id);
    if (collection?.waitingFor.delete(workerId) !== true) return;
    if (part.ok) collection.parts.push(part.part);
    else collection.missing++;
    if (collection.waitingFor.size === 0) finish(id);
  };
  const start = (requester: WorkerLink, requestId: number, view: string): void => {
    const id = nextId++;
    const asked = [...workers.connected()].filter((worker) => serving.has(worker.id));
    collections.set(id, {
      requester,
      requestId,
      waitingFor: new Set(asked.map((worker) => worker.id)),
      parts: [],
      missing: 0,
      timer: setTimeout(() => {
        finish(id);
      }, timeoutMs),
    });
    if (asked.length === 0) finish(id);
    for (const worker of asked) {
      worker.send({ type: collectType, id, view }, (error) => {
        if (error !== null) settle(id, worker.id, { ok: false });
      });
    }
  };

  const stopMessages = workers.onMessage((from, message) => {
    if (!isRecord(message)) return;
    const id = message['id'];
    if (typeof id !== 'number') return;
    if (message['type'] === gatherType && typeof message['view'] === 'string') {
      start(from, id, message['view']);
    } else if (message['type'] === partType) {
      settle(id, from.id, { ok: message['ok'] === true, part: message['part'] });
    }
  });
  const stopListening = workers.onListening((worker) => {
    serving.add(worker.id);
  });
  const stopExits = workers.onExit((worker) => {
    serving.delete(worker.id);
    for (const id of [...collections.keys()]) settle(id, worker.id, { ok: false });
  });
  return () => {
    stopMessages();
    stopListening();
    stopExits();
    serving.clear();
    for (const collection of collections.values()) clearTimeout(collection.timer);
    collections.clear();
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
