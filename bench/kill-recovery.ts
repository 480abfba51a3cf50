import http from 'node:http';
import { sweepIntervalFor } from '../src/ledger/ledger-options.js';
import { metrics } from './server-process.js';

/**
 * Recovery after a real crash, shared by the `recovery` benchmark and the black-box test
 * test/server/kill-recovery.test.ts. A server holds `count` orders in flight (every step takes
 * 30 s, so none can finish), each recorded running in its store; it is killed with SIGKILL;
 * then the instance that recovers them — the same server started again on its store, or a
 * second instance serving on the same PostgreSQL database since before the load — records
 * them `interrupted`. The figure is the time from the kill until the last of them is
 * recorded, read off the recovering instance's log: it logs each recovered order once the
 * write that recorded it has committed, with the time (epoch milliseconds, as the clock of
 * this process).
 */

/** A server process as the scenario needs it. */
export interface Instance {
  readonly url: string;
  /** output is everything the process has written to stdout (its log) so far. */
  output(): string;
  /** kill sends SIGKILL and resolves once the process has exited. */
  kill(): Promise<void>;
}

/** The message the ledger logs for each recovered order. */
const recoveredMessage = 'recovered an order interrupted by a dead instance';

/** Every step of a held order takes this long: longer than the scenario lasts. */
const stepMs = 30_000;

/**
 * holdingEnv is the configuration under which `count` held orders run at once: a deadline
 * past their steps, a courier for each and room for all of them in flight; the lease is
 * `leaseMs`. The rest is the default configuration.
 */
export function holdingEnv(count: number, leaseMs: number): Record<string, string> {
  return {
    REQUEST_TIMEOUT_MS: String(2 * stepMs),
    COURIER_POOL_SIZE: String(count),
    MAX_INFLIGHT_ORDERS: String(Math.max(count, 1000)),
    ORDER_LEASE_MS: String(leaseMs),
  };
}

/** The bound the README promises: every orphan recorded within lease + sweep + 1 s of the kill. */
export const promisedMs = (leaseMs: number): number => leaseMs + sweepIntervalFor(leaseMs) + 1000;

export interface KillRecoveryOptions {
  /** Orders in flight at the kill. */
  readonly count: number;
  /** ORDER_LEASE_MS of every instance; `start` passes {@link holdingEnv} of it. */
  readonly leaseMs: number;
  /** start starts an instance on the store under test and resolves once it serves. */
  readonly start: () => Promise<Instance>;
  /**
   * Who recovers: `restart`, the killed server started again on its store once it has died
   * (as a process manager restarts it); `survivor`, a second instance started before the load.
   */
  readonly recoverer: 'restart' | 'survivor';
  /** Prefix of the order ids, unique to the run. */
  readonly prefix: string;
}

export interface KillRecovery {
  /** The held orders' ids. */
  readonly ids: readonly string[];
  /** How many of them the recovering instance logged as recovered. */
  readonly recovered: number;
  /** Milliseconds from the kill to the last of them recorded `interrupted`. */
  readonly recordedMs: number;
  /** With `restart`: milliseconds from the kill until the new process served. */
  readonly restartedMs: number | undefined;
  /** The instance that recovered them, still running: the caller stops it. */
  readonly recoverer: Instance;
}

/**
 * killUnderLoad runs the scenario of {@link KillRecoveryOptions}. It waits for the recovery
 * up to lease + sweep + 30 s after the kill; `recovered` below `count` says some orders were
 * not recovered by then.
 */
export async function killUnderLoad(options: KillRecoveryOptions): Promise<KillRecovery> {
  const { count, leaseMs, prefix } = options;
  const survivor = options.recoverer === 'survivor' ? await options.start() : undefined;
  const victim = await options.start();
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  const held = holdOrders(victim.url, ids);
  await untilStepsInFlight(victim.url, 3 * count);
  const killedAt = Date.now();
  await victim.kill();
  const answered = await held;
  if (answered > 0) throw new Error(`${answered} held orders were answered before the kill`);
  const recoverer = survivor ?? (await options.start());
  const restartedMs = survivor === undefined ? Date.now() - killedAt : undefined;
  const waitUntil = killedAt + promisedMs(leaseMs) + 30_000;
  let times = recoveredTimes(recoverer.output(), prefix);
  while (times.length < count && Date.now() < waitUntil) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    times = recoveredTimes(recoverer.output(), prefix);
  }
  return {
    ids,
    recovered: times.length,
    recordedMs: times.length === 0 ? Number.NaN : Math.max(...times) - killedAt,
    restartedMs,
    recoverer,
  };
}

/**
 * holdOrders sends one order of each id to `url` at once, each on a connection of its own,
 * and resolves once every request has ended, with how many were answered (none, while the
 * server holds them; their connections break when it dies).
 */
function holdOrders(url: string, ids: readonly string[]): Promise<number> {
  const agent = new http.Agent({ maxSockets: ids.length });
  const one = (id: string): Promise<boolean> =>
    new Promise((resolve) => {
      const payload = JSON.stringify({
        order_id: id,
        amount: 1,
        delay_ms: { payment: stepMs, vendor: stepMs, courier: stepMs },
      });
      const request = http.request(
        `${url}/order`,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (response) => {
          response.resume();
          response.once('end', () => {
            resolve(true);
          });
          response.once('error', () => {
            resolve(false);
          });
        },
      );
      request.once('error', () => {
        resolve(false);
      });
      request.end(payload);
    });
  return Promise.all(ids.map(one)).then(
    (answers) => {
      agent.destroy();
      return answers.filter(Boolean).length;
    },
    (error: unknown) => {
      agent.destroy();
      throw error;
    },
  );
}

/**
 * untilStepsInFlight polls the server's metrics until `steps` steps run at once: a step starts
 * only after its order's first write has committed, so every held order is then recorded
 * running. Rejects after 30 s.
 */
async function untilStepsInFlight(url: string, steps: number): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const value = (await metrics({ url }))('order_pipeline_steps_in_flight');
    if (value >= steps) return;
    if (Date.now() > until) {
      throw new Error(`${String(value)} of ${steps} steps in flight after 30 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * recoveredTimes reads the log `output` and returns the time each order whose id starts with
 * `prefix` was logged recovered, once per order.
 */
export function recoveredTimes(output: string, prefix: string): number[] {
  const times = new Map<string, number>();
  for (const line of output.split('\n')) {
    if (!line.includes(recoveredMessage)) continue;
    const entry = JSON.parse(line) as { time?: unknown; order_id?: unknown };
    if (typeof entry.order_id !== 'string' || !entry.order_id.startsWith(`${prefix}-`)) continue;
    if (typeof entry.time === 'number' && !times.has(entry.order_id)) {
      times.set(entry.order_id, entry.time);
    }
  }
  return [...times.values()];
}

/** Recorded is what `GET /order/:order_id` tells of a recovered order. */
interface Recorded {
  readonly state?: string;
  readonly error?: { readonly kind?: string };
}

/**
 * readInterrupted asks `url` for each of `ids` (`GET /order/:order_id`) and resolves with how
 * many read finished with kind `interrupted`.
 */
export async function readInterrupted(url: string, ids: readonly string[]): Promise<number> {
  let interrupted = 0;
  for (const id of ids) {
    const response = await fetch(`${url}/order/${encodeURIComponent(id)}`);
    const recorded = (await response.json()) as Recorded;
    if (recorded.state === 'finished' && recorded.error?.kind === 'interrupted') interrupted++;
  }
  return interrupted;
}
