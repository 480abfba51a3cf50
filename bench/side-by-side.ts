import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { details, measured, type Load } from './http-load.js';
import { row, type Row } from './report.js';
import { pinnedCommand, startBareFloor, startServer } from './server-process.js';

/**
 * Side by side with the Go service this project started from, in one run: each server pinned
 * to the last core, wrk with one thread on the others, a fresh `order_id` per request, every
 * step at 1 ms, 2xx orders/s after a warm-up of the same load.
 *
 * - the Go service built with pool 128 and a 2 s timeout (`GO_ORIGINAL_POOL128`, a binary)
 *   against the default configuration at pool 128 (embedded SQLite store, logs at `info` to a
 *   file), at 64 and at 256 connections; targets ≥ 0.8× its orders/s, p99 ≤ 2× its p99 at 64
 *   connections and ≤ 100 ms at 256;
 * - the Go service as it ships (pool 5; `GO_ORIGINAL`) against the default configuration at
 *   pool 5, 64 connections; target ≥ 1.0×;
 * - the default configuration against the bare node:http floor (bench/bare-floor-server.ts)
 *   at 64 connections; target ≥ 85%.
 *
 * The Go service is not part of this repository: build it from its own repository and name
 * the binaries; both listen where `GO_ORIGINAL_URL` says (http://127.0.0.1:8080 as it ships).
 * Without them the section reports that it did not run.
 */

const goUrl = process.env['GO_ORIGINAL_URL'] ?? 'http://127.0.0.1:8080';

/** A server under load: where to send orders, and how to stop it. */
interface Running {
  readonly url: string;
  stop(): Promise<void>;
}

/** startPinned starts `command` pinned to the server's core and waits until `url` answers. */
async function startPinned(command: string[], url: string): Promise<Running> {
  const pinned = pinnedCommand(command);
  const child = spawn(pinned[0] ?? '', pinned.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`${command.join(' ')} exited at start`);
    try {
      // Any answer means it listens; a GET on the order route is refused 404 or 405.
      await fetch(`${url}/order`);
      return { url, stop };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  await stop();
  throw new Error(`${command.join(' ')} did not listen on ${url}`);
}

/** ours starts the default configuration at `pool`, logging at info to a file. */
async function ours(pool: number, logDir: string): Promise<Running> {
  const server = await startServer(
    { COURIER_POOL_SIZE: String(pool) },
    { stdoutFile: join(logDir, `pool-${pool}.log`) },
  );
  return { url: server.url, stop: () => server.stop() };
}

/** loads measures `connections` in turn against a server, stopping it whatever happens. */
async function loads(
  start: () => Promise<Running>,
  connections: readonly number[],
  seconds: number,
  warmUp: number,
): Promise<Load[]> {
  const server = await start();
  try {
    const results: Load[] = [];
    for (const count of connections) {
      results.push(await measured(`${server.url}/order`, count, seconds, warmUp));
    }
    return results;
  } finally {
    await server.stop();
  }
}

const perSecond = (load: Load): string =>
  `${Math.round(load.ordersPerSecond).toLocaleString('en-US')} orders/s`;
const clean = (load: Load): boolean => load.non2xx + load.errors === 0;
export async function sideBySideBenchmark(options: { quick: boolean }): Promise<Row[]> {
  const goPool128 = process.env['GO_ORIGINAL_POOL128'];
  const goAsShipped = process.env['GO_ORIGINAL'];
  if (
    goPool128 === undefined ||
    goAsShipped === undefined ||
    !existsSync(goPool128) ||
    !existsSync(goAsShipped)
  ) {
    return [
      row({
        section: 'go',
        scenario: 'side by side with the Go service this project started from',
        value: Number.NaN,
        unit: '',
        figure: 'not run',
        compare:
          'set GO_ORIGINAL (its binary as it ships, pool 5) and GO_ORIGINAL_POOL128 (built with pool 128 and a 2 s timeout)',
      }),
    ];
  }
  const seconds = options.quick ? 3 : 10;
  const warmUp = options.quick ? 1 : 3;
  const logDir = mkdtempSync(join(tmpdir(), 'order-pipeline-side-by-side-'));
  try {
    const [go64, go256] = await loads(
      () => startPinned([goPool128], goUrl),
      [64, 256],
      seconds,
      warmUp,
    );
    const [our64, our256] = await loads(() => ours(128, logDir), [64, 256], seconds, warmUp);
    const [floor64] = await loads(startBareFloor, [64], seconds, warmUp);
    const [goPool5] = await loads(() => startPinned([goAsShipped], goUrl), [64], seconds, warmUp);
    const [ourPool5] = await loads(() => ours(5, logDir), [64], seconds, warmUp);
    if (
      go64 === undefined ||
      go256 === undefined ||
      our64 === undefined ||
      our256 === undefined ||
      floor64 === undefined ||
      goPool5 === undefined ||
      ourPool5 === undefined
    ) {
      throw new Error('a load of the side-by-side run gave no result');
    }
    const ratio = (mine: Load, theirs: Load): number =>
      mine.ordersPerSecond / theirs.ordersPerSecond;
    const compared = (
      scenario: string,
      mine: Load,
      theirs: Load,
      least: number,
      p99Within: number,
      p99Target: string,
    ): Row =>
      row({
        section: 'go',
        scenario,
        value: ratio(mine, theirs),
        unit: '×',
        figure: `${perSecond(mine)}, ${ratio(mine, theirs).toFixed(2)}× the Go service`,
        baseline: `Go service ${perSecond(theirs)} (${details(theirs)})`,
        compare: details(mine),
        target: `≥ ${least.toFixed(1)}×${p99Target === '' ? '' : `, ${p99Target}`}`,
        met: ratio(mine, theirs) >= least && mine.p99 <= p99Within && clean(mine) && clean(theirs),
      });
    return [
      compared(
        'pool 128, 64 connections: default configuration vs the Go service (pool 128, 2 s timeout)',
        our64,
        go64,
        0.8,
        2 * go64.p99,
        `p99 ≤ 2× the Go service's (${2 * go64.p99} ms)`,
      ),
      compared(
        'pool 128, 256 connections: default configuration vs the Go service (pool 128, 2 s timeout)',
        our256,
        go256,
        0.8,
        100,
        'p99 ≤ 100 ms',
      ),
      compared(
        'pool 5, 64 connections (ceiling 5,000 orders/s): default configuration vs the Go service as it ships',
        ourPool5,
        goPool5,
        1.0,
        Number.POSITIVE_INFINITY,
        '',
      ),
      row({
        section: 'go',
        scenario: 'pool 128, 64 connections: default configuration vs the bare node:http floor',
        value: (100 * our64.ordersPerSecond) / floor64.ordersPerSecond,
        unit: '%',
        figure: `${((100 * our64.ordersPerSecond) / floor64.ordersPerSecond).toFixed(0)}% of the floor`,
        baseline: `bare node:http ${Math.round(floor64.ordersPerSecond).toLocaleString('en-US')} req/s (${details(floor64)})`,
        compare: `default configuration ${perSecond(our64)}`,
        target: '≥ 85%',
        met: our64.ordersPerSecond >= 0.85 * floor64.ordersPerSecond && clean(floor64),
      }),
    ];
  } finally {
    rmSync(logDir, { recursive: true, force: true });
  }
}
