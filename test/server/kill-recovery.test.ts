import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  holdingEnv,
  killUnderLoad,
  promisedMs,
  readInterrupted,
  type Instance,
  type KillRecoveryOptions,
} from '../../bench/kill-recovery.js';
import { createThrowawayDatabase, postgresAvailable } from '../store/postgres-database.js';
import { killServers, spawnServer } from './server-process.js';

// The README's promise after a crash, timed against the real server: `kill -9` of a server
// holding many orders in flight, and every one of them recorded `interrupted` within
// lease + sweep + 1 s of the kill — by the same server started again on its store, or by
// another instance on the same PostgreSQL database. The scenario is bench/kill-recovery.ts,
// which the `recovery` benchmark runs with 1,000 orders.

const postgresUp = await postgresAvailable();
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await killServers();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const count = 200;
const leaseMs = 2000;

/** starter starts the real server, as `npm start` does, with `env` over the holding env. */
function starter(env: Record<string, string>): () => Promise<Instance> {
  return async () => {
    const server = spawnServer({ ...holdingEnv(count, leaseMs), ...env });
    const port = await server.listening();
    return {
      url: `http://127.0.0.1:${port}`,
      output: () => server.output(),
      kill: async () => {
        server.child.kill('SIGKILL');
        await server.exited;
      },
    };
  };
}

/** expectRecovered runs the scenario and checks the promise: all recorded, in time, as GET says. */
async function expectRecovered(
  start: () => Promise<Instance>,
  recoverer: KillRecoveryOptions['recoverer'],
): Promise<void> {
  const result = await killUnderLoad({
    count,
    leaseMs,
    start,
    recoverer,
    prefix: `kill-${recoverer}-${Date.now()}`,
  });
  expect(result.recovered, 'orders logged recovered').toBe(count);
  expect(result.recordedMs, 'from the kill to the last recorded').toBeLessThanOrEqual(
    promisedMs(leaseMs),
  );
  expect(await readInterrupted(result.recoverer.url, result.ids)).toBe(count);
}

describe(`kill -9 of the real server holding ${count} orders in flight`, () => {
  it('embedded store (the default), started again: all interrupted within lease + sweep + 1 s', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'order-kill-recovery-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    await expectRecovered(starter({ DATA_DIR: dataDir }), 'restart');
  }, 60_000);

  it.skipIf(!postgresUp)(
    'PostgreSQL store, started again: all interrupted within lease + sweep + 1 s',
    async () => {
      const database = await createThrowawayDatabase();
      cleanups.push(() => database.drop());
      await expectRecovered(starter({ DATABASE_URL: database.url }), 'restart');
    },
    60_000,
  );

  it.skipIf(!postgresUp)(
    'PostgreSQL store, two instances: the other recovers them within lease + sweep + 1 s',
    async () => {
      const database = await createThrowawayDatabase();
      cleanups.push(() => database.drop());
      await expectRecovered(starter({ DATABASE_URL: database.url }), 'survivor');
    },
    60_000,
  );
});
