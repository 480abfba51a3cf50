import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '../src/config.js';
import { Semaphore } from '../src/core/semaphore.js';
import { Compensator } from '../src/ledger/compensator.js';
import { silentLogger } from '../src/ledger/ledger-options.js';
import type { OrderStore } from '../src/ledger/order-store.js';
import { interruptedRecord } from '../src/ledger/recovery.js';
import { simulatedSteps } from '../src/order/simulated-steps.js';
import { serviceSettings } from '../src/server.js';
import { OrderService } from '../src/service/order-service.js';
import { MemoryOrderStore } from '../src/store/memory-order-store.js';
import { openPostgresOrderStore } from '../src/store/postgres-order-store.js';
import { openSqliteOrderStore } from '../src/store/sqlite-order-store.js';
import {
  holdingEnv,
  killUnderLoad,
  promisedMs,
  readInterrupted,
  type Instance,
  type KillRecoveryOptions,
} from './kill-recovery.js';
import { row, type Row } from './report.js';
import { withDatabase } from './scale-out.js';
import { startServer, type BenchServer } from './server-process.js';

/**
 * The recovery benchmark. First the real process (bench/kill-recovery.ts): the server as
 * `npm start` runs it, holding 1,000 orders in flight, killed with SIGKILL, and the time from
 * the kill until the instance that recovers them has recorded the last `interrupted` — the
 * default configuration started again on its data directory, then PostgreSQL started again and
 * a second PostgreSQL instance.
 *
 * Then the recovery alone, in this process: orders left running by an instance that died,
 * their leases expired, then one start of the order service as the server starts it (its
 * first sweep). The figure is the time until every one is recorded `interrupted` (GET showed
 * it `running` until then); a full run also times until their compensations (the simulated
 * steps', 70 ms an order) have all run, which a resubmission of a key waits for (409 until
 * then), and the recording of 10,000. The default store first (embedded SQLite, synchronous
 * NORMAL), then memory and PostgreSQL. The baseline, measured in the same run on a sample, is
 * recovery as it was before: one order at a time, recorded, then its compensations run and
 * awaited before the next.
 */

const orphans = 1_000;
const fmt = (ms: number): string =>
  ms >= 1_000 ? `${(ms / 1_000).toFixed(ms >= 10_000 ? 0 : 2)} s` : `${ms.toFixed(0)} ms`;

/** A store to measure on, opened fresh for each measurement. */
interface StoreUnderTest {
  readonly name: string;
  /** open resolves with a fresh, empty store and what removes it. */
  open(): Promise<{ store: OrderStore; remove: () => Promise<void> }>;
}

/** begin records `count` runs of a dead instance whose leases have expired; new ids each time. */
async function begin(store: OrderStore, count: number): Promise<string[]> {
  const now = Date.now();
  const prefix = randomUUID().slice(0, 8);
  const ids = Array.from({ length: count }, (_, i) => `orphan-${prefix}-${i}`);
  for (let from = 0; from < count; from += 1_000) {
    await Promise.all(
      ids.slice(from, from + 1_000).map((id) =>
        store.begin({
          runId: `run-${id}`,
          orderId: id,
          order: { id, amount: 1 },
          owner: 'dead-instance',
          leaseUntil: now - 1,
          now: now - defaultConfig.orderLeaseMs,
        }),
      ),
    );
  }
  return ids;
}

/** untilSettled polls `store` until no compensation is open, and resolves when none is. */
async function untilSettled(store: OrderStore): Promise<void> {
  while ((await store.openCompensations(1)).length > 0) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * recoverAll starts an order service over `store` holding `count` orphans and measures the
 * time until its start has recorded them all `interrupted` and, with `settle`, until their
 * compensations have all run. Throws if any orphan is not recorded `interrupted`.
 */
async function recoverAll(
  store: OrderStore,
  count: number,
  settle: boolean,
): Promise<{ interruptedMs: number; settledMs: number }> {
  const ids = await begin(store, count);
  const service = new OrderService({
    ...serviceSettings(defaultConfig),
    store,
    courierPool: new Semaphore(defaultConfig.courierPoolSize),
    steps: (courierPool) => simulatedSteps({ courierPool }),
  });
  const startedAt = performance.now();
  await service.start();
  const interruptedMs = performance.now() - startedAt;
  if (settle) await untilSettled(store);
  const settledMs = settle ? performance.now() - startedAt : Number.NaN;
  await service.close();
  for (const id of ids) {
    const kind = (await store.get(id))?.outcome?.error?.kind;
    if (kind !== 'interrupted') throw new Error(`orphan ${id} was recorded ${String(kind)}`);
  }
  return { interruptedMs, settledMs };
}

/**
 * oneAtATime is the recovery before this change, on the same store contract: each orphan
 * recorded `interrupted` on its own, then its compensations run and awaited before the next.
 * Resolves with the milliseconds it took per order.
 */
async function oneAtATime(store: OrderStore, count: number): Promise<number> {
  await begin(store, count);
  const steps = simulatedSteps({ courierPool: new Semaphore(defaultConfig.courierPoolSize) });
  const stepNames = steps.map((step) => step.name);
  const compensator = new Compensator({
    store,
    steps,
    timeoutMs: defaultConfig.compensationTimeoutMs,
    maxAttempts: defaultConfig.compensationMaxAttempts,
    retryBaseMs: defaultConfig.compensationRetryBaseMs,
    retryMaxMs: defaultConfig.compensationRetryMaxMs,
    now: Date.now,
    random: Math.random,
    log: silentLogger,
    hooks: {},
  });
  const startedAt = performance.now();
  for (;;) {
    const now = Date.now();
    const [run] = await store.recoverOrphans({
      owner: 'recovering-instance',
      now,
      anyOwner: false,
      limit: 1,
      ...interruptedRecord(compensator, stepNames, now),
    });
    if (run === undefined) break;
    await compensator.compensate(run);
  }
  return (performance.now() - startedAt) / count;
}

/**
 * measure measures on `target` the recovery before this change on a sample, then the
 * recovery of each of `counts` orphans: one row per count.
 */
async function measure(
  target: StoreUnderTest,
  counts: readonly number[],
  options: { quick: boolean; sample: number },
): Promise<Row[]> {
  const before = await target.open();
  let perOrderBefore: number;
  try {
    perOrderBefore = await oneAtATime(before.store, options.sample);
  } finally {
    await before.store.close();
    await before.remove();
  }
  const rows: Row[] = [];
  for (const count of counts) {
    // Past about a thousand orphans the tail of their compensations is the due-compensation
    // sweep's: timed for the target's count only.
    const settle = !options.quick && count === orphans;
    const after = await target.open();
    let figures: { interruptedMs: number; settledMs: number };
    try {
      figures = await recoverAll(after.store, count, settle);
    } finally {
      await after.store.close();
      await after.remove();
    }
    const { interruptedMs, settledMs } = figures;
    const counted = count.toLocaleString('en-US');
    rows.push(
      row({
        section: 'recovery',
        scenario: `${counted} orphans, one start: all interrupted, ${target.name}`,
        value: interruptedMs,
        unit: 'ms',
        figure: settle
          ? `${fmt(interruptedMs)} · all compensated ${fmt(settledMs)}`
          : fmt(interruptedMs),
        baseline:
          `one at a time (before): ${perOrderBefore.toFixed(1)} ms an order ` +
          `(n=${options.sample}), ~${fmt(perOrderBefore * count)} for ${counted}`,
        target: '≤ 2 s after the lease',
        met: interruptedMs <= 2_000,
      }),
    );
  }
  return rows;
}

const sqlite: StoreUnderTest = {
  name: 'embedded SQLite (default)',
  async open() {
    const dataDir = await mkdtemp(join(tmpdir(), 'order-pipeline-recovery-'));
    return {
      store: await openSqliteOrderStore({ dataDir, sync: defaultConfig.storeSync }),
      remove: () => rm(dataDir, { recursive: true, force: true }),
    };
  },
};

const memory: StoreUnderTest = {
  name: 'memory',
  open: () => Promise.resolve({ store: new MemoryOrderStore(), remove: () => Promise.resolve() }),
};

/** postgres runs `work` with the PostgreSQL store in a database of its own. */
function postgres<T>(work: (target: StoreUnderTest) => Promise<T>): Promise<T> {
  return withDatabase((url) =>
    work({
      name: 'PostgreSQL',
      // Each measurement begins orphans of its own: the runs of the one before, all
      // finished, stay behind.
      open: async () => ({
        store: await openPostgresOrderStore({
          connectionString: url,
          poolSize: defaultConfig.databasePoolSize,
        }),
        remove: () => Promise.resolve(),
      }),
    }),
  );
}

/**
 * killed runs the kill -9 scenario with `orphans` orders held by servers started as `npm start`
 * starts them with `env` (over {@link holdingEnv}), and returns its row. The servers' logs go
 * to files of their own, read for the recovery's times.
 */
async function killed(
  name: string,
  env: Record<string, string>,
  leaseMs: number,
  recoverer: KillRecoveryOptions['recoverer'],
): Promise<Row> {
  const logDir = await mkdtemp(join(tmpdir(), 'order-pipeline-kill-'));
  const servers: BenchServer[] = [];
  try {
    let started = 0;
    const start = async (): Promise<Instance> => {
      const logFile = join(logDir, `server-${started++}.log`);
      const server = await startServer(
        { ...holdingEnv(orphans, leaseMs), ...env },
        { pin: false, stdoutFile: logFile },
      );
      servers.push(server);
      return {
        url: server.url,
        output: () => readFileSync(logFile, 'utf8'),
        kill: () => server.kill(),
      };
    };
    const result = await killUnderLoad({
      count: orphans,
      leaseMs,
      start,
      recoverer,
      prefix: `kill-${randomUUID().slice(0, 8)}`,
    });
    const interrupted = await readInterrupted(result.recoverer.url, result.ids);
    const { recordedMs, restartedMs } = result;
    return row({
      section: 'recovery',
      scenario:
        'kill -9 holding 1,000 orders, ' +
        (restartedMs === undefined ? 'recovered by a second instance' : 'started again') +
        ` (lease ${fmt(leaseMs)}): all interrupted, ${name}`,
      value: recordedMs,
      unit: 'ms',
      figure: `${fmt(recordedMs)} after the kill · ${interrupted} read interrupted`,
      baseline:
        restartedMs === undefined
          ? 'the second instance served throughout'
          : `serving again ${fmt(restartedMs)} after the kill`,
      target: `≤ lease + 2 s (${fmt(leaseMs + 2000)}); promised lease + sweep + 1 s (${fmt(promisedMs(leaseMs))})`,
      met: interrupted === orphans && recordedMs <= Math.min(leaseMs + 2000, promisedMs(leaseMs)),
    });
  } finally {
    for (const server of servers) await server.stop();
    await rm(logDir, { recursive: true, force: true });
  }
}

export async function recoveryBenchmarks(options: { quick: boolean }): Promise<Row[]> {
  const measured = { quick: options.quick, sample: options.quick ? 10 : 50 };
  const dataDir = await mkdtemp(join(tmpdir(), 'order-pipeline-kill-data-'));
  const realProcess: Row[] = [];
  try {
    realProcess.push(
      await killed(
        'embedded SQLite (default)',
        { DATA_DIR: dataDir },
        defaultConfig.orderLeaseMs,
        'restart',
      ),
    );
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
  // PostgreSQL waits out the lease: a short one keeps the run short.
  const pgLeaseMs = 2000;
  for (const recoverer of ['restart', 'survivor'] as const) {
    realProcess.push(
      await withDatabase((url) =>
        killed('PostgreSQL', { DATABASE_URL: url }, pgLeaseMs, recoverer),
      ),
    );
  }
  return [
    ...realProcess,
    ...(await measure(sqlite, options.quick ? [orphans] : [orphans, 10 * orphans], measured)),
    ...(await measure(memory, [orphans], measured)),
    ...(await postgres((target) => measure(target, [orphans], measured))),
  ];
}
