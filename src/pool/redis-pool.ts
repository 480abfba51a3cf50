import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Cancellation } from '../core/cancellation.js';
import type { Permit, Pool } from '../core/semaphore.js';

/**
 * The pool's state in Redis, under one key prefix:
 * - `holders`: sorted set, member = a permit's id, score = when its lease ends (ms);
 * - `queue`: sorted set, member = a waiter's id, score = its ticket (arrival order);
 * - `waiters`: sorted set, member = a waiter's id, score = when its lease ends;
 * - `ticket`: the counter that numbers arrivals;
 * - `granted`: the channel on which a waiter's id is published when it gets a slot.
 * Every change happens in one of the scripts below, atomically; time is Redis' own (`TIME`),
 * so leases do not depend on the instances' clocks.
 */
const common = `
local H, Q, W, C = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local size, leaseMs = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Frees the slots of dead holders, then serves the queue in ticket order, skipping waiters
-- whose lease ended (their instance is gone), and tells each one served.
local function serve()
  redis.call('ZREMRANGEBYSCORE', H, '-inf', now)
  while redis.call('ZCARD', H) < size do
    local head = redis.call('ZPOPMIN', Q)
    if #head == 0 then break end
    local id = head[1]
    local alive = redis.call('ZSCORE', W, id)
    redis.call('ZREM', W, id)
    if alive and tonumber(alive) >= now then
      redis.call('ZADD', H, now + leaseMs, id)
      redis.call('PUBLISH', C, id)
    end
  end
end
`;

/** ACQUIRE id: a slot now ({1, …}) if one is free and nobody waits, else a place in line. */
const acquireScript = `${common}
local id = ARGV[3]
serve()
if redis.call('ZCARD', Q) == 0 and redis.call('ZCARD', H) < size then
  redis.call('ZADD', H, now + leaseMs, id)
  return {1, redis.call('ZCARD', H), 0}
end
redis.call('ZADD', Q, redis.call('INCR', KEYS[5]), id)
redis.call('ZADD', W, now + leaseMs, id)
return {0, redis.call('ZCARD', H), redis.call('ZCARD', Q)}
`;

/** RELEASE id: gives the slot back and serves the queue. */
const releaseScript = `${common}
local released = redis.call('ZREM', H, ARGV[3])
serve()
return {released, redis.call('ZCARD', H), redis.call('ZCARD', Q)}
`;

/**
 * CANCEL id: a waiter gives up. If it was still in line it leaves ({1, 0, …}); if it had just
 * been given a slot, the slot goes back ({0, 1, …}).
 */
const cancelScript = `${common}
local id = ARGV[3]
local queued = redis.call('ZREM', Q, id)
redis.call('ZREM', W, id)
local held = 0
if queued == 0 then held = redis.call('ZREM', H, id) end
serve()
return {queued, held, redis.call('ZCARD', H), redis.call('ZCARD', Q)}
`;

/** RENEW ids…: extends the leases of this instance's holders and waiters, and reaps. */
const renewScript = `${common}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', H, id) then redis.call('ZADD', H, 'XX', now + leaseMs, id) end
  if redis.call('ZSCORE', W, id) then redis.call('ZADD', W, 'XX', now + leaseMs, id) end
end
serve()
return {redis.call('ZCARD', H), redis.call('ZCARD', Q)}
`;

/** PoolUnavailableError: Redis cannot be reached; the acquire failed without a slot. */
export class PoolUnavailableError extends Error {
  constructor(message = 'the courier pool is unavailable') {
    super(message);
    this.name = 'PoolUnavailableError';
  }
}

export interface RedisPoolOptions {
  /** A `redis://` URL. */
  readonly url: string;
  /** Slots shared by every instance that uses the same prefix. */
  readonly size: number;
  /** Key prefix of the pool's state: instances with the same prefix share the pool. */
  readonly prefix: string;
  /** A held slot's lease, renewed while held: past it without renewal, the slot is freed. */
  readonly leaseMs: number;
  /** How long one command may take before it fails (Redis unreachable). */
  readonly commandTimeoutMs?: number | undefined;
  /** Makes the errors of a failed acquire: `unavailable` for the order by default. */
  readonly unavailable?: (() => Error) | undefined;
}

interface Waiter {
  readonly id: string;
  granted: boolean;
  settle: ((granted: boolean) => void) | undefined;
}

/**
 * RedisPool is a {@link Pool} whose slots are shared by every instance connected to the same
 * Redis with the same prefix: never more than `size` held at once across all of them.
 *
 * - **Exact bound.** Slots are granted only inside Redis scripts, atomically.
 * - **First in, first out across instances.** Waiters are served in the order their acquire
 *   reached Redis (one global ticket counter).
 * - **Abortable.** An acquire aborted while waiting leaves the queue at once; a slot granted
 *   after the abort is given back in the same script.
 * - **Leases.** Every held slot and every waiter has a lease (`leaseMs`), renewed a few
 *   times per lease while alive; Redis' own clock decides when one has ended. A dead
 *   instance's slots come back within a lease.
 * - **No polling.** A waiter is woken by a message on a channel when its slot is granted
 *   (one subscriber connection per instance).
 * - **Failures are answered.** With Redis unreachable, an acquire fails at once with
 *   `unavailable`, and so does every waiter when the connection drops. A slot whose release
 *   could not reach Redis stays counted until its lease ends, never twice. The client
 *   reconnects by itself; {@link ready} tells whether it is connected.
 *
 * `size`, `inUse` and `waiting` are the last counts Redis reported (after this instance's
 * last call or renewal): a view of the shared pool with some lag.
 */
export class RedisPool implements Pool {
  readonly size: number;
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #keys: readonly string[];
  readonly #leaseMs: number;
  readonly #instance = randomUUID();
  readonly #unavailable: () => Error;
  readonly #waiters = new Map<string, Waiter>();
  readonly #held = new Set<string>();
  readonly #shas = new Map<string, string>();
  #inUse = 0;
  #waiting = 0;
  #counter = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: RedisPoolOptions, redis: Redis, subscriber: Redis) {
    this.size = options.size;
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.#leaseMs = options.leaseMs;
    this.#unavailable = options.unavailable ?? (() => new PoolUnavailableError());
    const key = (name: string): string => `${options.prefix}:${name}`;
    this.#keys = [key('holders'), key('queue'), key('waiters'), key('granted'), key('ticket')];
  }

  /**
   * open connects to Redis (a command connection and a subscriber), loads the scripts and
   * starts the renewal of leases. A size or lease out of range throws a RangeError; rejects
   * if Redis cannot be reached, with the first connection error (`ECONNREFUSED`, …) rather
   * than ioredis's "Connection is closed", and both connections closed.
   */
  static async open(options: RedisPoolOptions): Promise<RedisPool> {
    if (!Number.isSafeInteger(options.size) || options.size < 1) {
      throw new RangeError(`RedisPool size must be a positive integer, got ${options.size}`);
    }
    if (!Number.isSafeInteger(options.leaseMs) || options.leaseMs < 100) {
      throw new RangeError(`RedisPool leaseMs must be an integer >= 100, got ${options.leaseMs}`);
    }
    const connect = (): Redis =>
      new Redis(options.url, {
        lazyConnect: true,
        // Fail at once while disconnected rather than queueing orders behind a dead link.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: options.commandTimeoutMs ?? 1000,
        retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
      });
    const redis = connect();
    const subscriber = connect();
    // Errors are answered through the calls that meet them; without listeners they would
    // crash the process. The first one says why opening failed, if it does.
    let firstError: unknown;
    const onError = (error: unknown): void => {
      firstError ??= error;
    };
    redis.on('error', onError);
    subscriber.on('error', onError);
    try {
      await Promise.all([redis.connect(), subscriber.connect()]);
      const pool = new RedisPool(options, redis, subscriber);
      await pool.#start();
      return pool;
    } catch (error) {
      redis.disconnect();
      subscriber.disconnect();
      throw firstError ?? error;
    }
  }

  get inUse(): number {
    return this.#inUse;
  }

  get waiting(): number {
    return this.#waiting;
  }

  /** ready is true while both connections to Redis are up. */
  get ready(): boolean {
    return this.#redis.status === 'ready' && this.#subscriber.status === 'ready';
  }

  async #start(): Promise<void> {
    const channel = this.#keys[3] ?? '';
    this.#subscriber.on('message', (from: string, id: string) => {
      if (from === channel) this.#granted(id);
    });
    // When a connection drops, waiters cannot be told of their slot: they fail now, rather
    // than at their deadline.
    const dropped = (): void => {
      this.#failWaiters();
    };
    this.#redis.on('close', dropped);
    this.#subscriber.on('close', dropped);
    // A new connection re-subscribes by itself (ioredis), and the scripts are reloaded on
    // first use if Redis restarted.
    await this.#subscriber.subscribe(channel);
    await Promise.all(
      [acquireScript, releaseScript, cancelScript, renewScript].map((script) => this.#load(script)),
    );
    this.#schedule();
  }

  acquire(cancel?: Cancellation): Promise<Permit> {
    if (cancel?.aborted === true) return Promise.reject(cancel.reason);
    if (this.#closed) return Promise.reject(this.#unavailable());
    const id = `${this.#instance}:${++this.#counter}`;
    // Registered before the script runs: the message granting the slot may come first.
    const waiter: Waiter = { id, granted: false, settle: undefined };
    this.#waiters.set(id, waiter);
    return new Promise<Permit>((resolve, reject) => {
      let inLine = false;
      let settled = false;
      const finish = (granted: boolean, error?: unknown): void => {
        if (settled) return;
        settled = true;
        removeListener?.();
        waiter.settle = undefined;
        this.#waiters.delete(id);
        if (granted) {
          this.#held.add(id);
          resolve(this.#permit(id));
        } else {
          reject(error);
        }
      };
      // An abort while the acquire script runs is acted on when it answers; once in line,
      // at once.
      const removeListener = cancel?.onAbort((reason) => {
        if (!inLine) return;
        this.#cancel(id);
        finish(false, reason);
      });
      this.#run(acquireScript, [id]).then(
        ([now, inUse, waiting]) => {
          this.#counts(inUse, waiting);
          const granted = now === 1 || waiter.granted;
          if (cancel?.aborted === true) {
            // Aborted while asking: a slot granted meanwhile goes back, in line or not.
            if (granted) this.#release(id);
            else this.#cancel(id);
            finish(false, cancel.reason);
            return;
          }
          if (granted) {
            finish(true);
            return;
          }
          inLine = true;
          waiter.settle = (slot) => {
            finish(slot, slot ? undefined : this.#unavailable());
          };
        },
        () => {
          finish(false, this.#unavailable());
        },
      );
    });
  }

  /** close stops the renewals and disconnects; slots still held come back with their leases. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#failWaiters();
    await Promise.allSettled([this.#redis.quit(), this.#subscriber.quit()]);
  }

  #permit(id: string): Permit {
    let released = false;
    return {
      release: () => {
        if (released) throw new Error('RedisPool: permit released twice');
        released = true;
        this.#held.delete(id);
        this.#release(id);
      },
    };
  }

  /** release gives slot `id` back; if Redis cannot be reached, it returns with its lease. */
  #release(id: string): void {
    this.#run(releaseScript, [id]).then(
      ([, inUse, waiting]) => {
        this.#counts(inUse, waiting);
      },
      () => undefined,
    );
  }

  #granted(id: string): void {
    const waiter = this.#waiters.get(id);
    if (waiter === undefined) return;
    waiter.granted = true;
    waiter.settle?.(true);
  }

  /** cancel takes an aborted waiter out of line, giving back a slot granted meanwhile. */
  #cancel(id: string): void {
    this.#run(cancelScript, [id]).then(
      ([, , inUse, waiting]) => {
        this.#counts(inUse, waiting);
      },
      // Unreachable: the waiter's lease ends, and Redis skips it when its turn comes.
      () => undefined,
    );
  }

  #failWaiters(): void {
    for (const waiter of [...this.#waiters.values()]) waiter.settle?.(false);
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(
      () => {
        const ids = [...this.#held, ...this.#waiters.keys()];
        this.#run(renewScript, ids).then(
          ([inUse, waiting]) => {
            this.#counts(inUse, waiting);
            this.#schedule();
          },
          () => {
            this.#schedule();
          },
        );
      },
      Math.floor(this.#leaseMs / 3),
    );
    this.#timer.unref();
  }

  #counts(inUse: number | undefined, waiting: number | undefined): void {
    if (inUse !== undefined) this.#inUse = inUse;
    if (waiting !== undefined) this.#waiting = waiting;
  }

  async #load(script: string): Promise<string> {
    const sha = await this.#redis.script('LOAD', script);
    if (typeof sha !== 'string') throw new Error('Redis did not load a script');
    this.#shas.set(script, sha);
    return sha;
  }

  /** run runs `script` with the pool's keys, size, lease and `args`; resolves its numbers. */
  async #run(script: string, args: readonly string[]): Promise<number[]> {
    const sha = this.#shas.get(script) ?? (await this.#load(script));
    const keys = this.#keys;
    const argv = [String(this.size), String(this.#leaseMs), ...args];
    let result: unknown;
    try {
      result = await this.#redis.evalsha(sha, keys.length, ...keys, ...argv);
    } catch (error) {
      // Redis restarted and forgot its scripts: load this one again, once.
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      result = await this.#redis.evalsha(await this.#load(script), keys.length, ...keys, ...argv);
    }
    if (!Array.isArray(result)) throw new TypeError('a pool script answered no numbers');
    return result.map(Number);
  }
}
