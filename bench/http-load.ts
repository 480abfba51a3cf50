import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { row, type Row } from './report.js';
import { startServer } from './server-process.js';

/**
 * The HTTP benchmarks: autocannon against the real server in a child process, the order
 * route beside the framework floor (`POST /bench/floor`, a route of the same server that
 * validates nothing and answers a fixed small JSON body), with the same body and connections.
 */

interface Load {
  ordersPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  /** The answers that were not 2xx, by status, e.g. `504×12`. */
  statuses: string;
}

const oneMs = { payment: 1, vendor: 1, courier: 1 };

let runs = 0;

async function load(url: string, connections: number, seconds: number): Promise<Load> {
  const prefix = `${process.pid}-${runs++}`;
  const result = await autocannon({
    url,
    method: 'POST',
    connections,
    duration: seconds,
    headers: { 'content-type': 'application/json' },
    // A fresh order id per request: the service answers a repeated id from its record.
    idReplacement: true,
    body: JSON.stringify({ order_id: `bench-${prefix}-[<id>]`, amount: 1250, delay_ms: oneMs }),
  });
  return {
    ordersPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statuses: Object.entries(result.statusCodeStats ?? {})
      .filter(([status]) => !status.startsWith('2'))
      .map(([status, stats]) => `${status}×${stats.count ?? 0}`)
      .join(' '),
  };
}

/**
 * measured runs an untimed warm-up of the same load (same route and connections) and then
 * the measured one: a fresh server compiles its code during its first thousands of requests.
 */
async function measured(
  url: string,
  connections: number,
  seconds: number,
  warmUpSeconds: number,
): Promise<Load> {
  await load(url, connections, warmUpSeconds);
  return load(url, connections, seconds);
}

function details(run: Load): string {
  const bad = run.non2xx + run.errors;
  const breakdown =
    bad === 0
      ? ''
      : ` (${[run.statuses, run.errors > 0 ? `errors/timeouts×${run.errors}` : ''].filter(Boolean).join(' ')})`;
  return `p50 ${run.p50} ms · p99 ${run.p99} ms · max ${run.max} ms · non-2xx/errors ${bad}${breakdown}`;
}

export async function httpBenchmarks(options: { quick: boolean }): Promise<Row[]> {
  const seconds = options.quick ? 2 : 10;
  const warmUp = options.quick ? 1 : 2;
  const rows: Row[] = [];
  const orders = (r: Load): string =>
    `${Math.round(r.ordersPerSecond).toLocaleString('en-US')} orders/s`;

  const pool5 = await startServer({ COURIER_POOL_SIZE: '5' });
  try {
    const run = await measured(`${pool5.url}/order`, 64, seconds, warmUp);
    const ceiling = 5 / 0.001;
    rows.push(
      row({
        section: 'http',
        scenario: 'pool 5, delays 1 ms, 64 connections (pool-bound)',
        value: run.ordersPerSecond,
        unit: 'orders/s',
        figure: orders(run),
        baseline: `ceiling ${ceiling.toLocaleString('en-US')} orders/s`,
        compare: details(run),
        target: '≥ 90% of ceiling',
        met: run.ordersPerSecond >= 0.9 * ceiling && run.non2xx + run.errors === 0,
      }),
    );
  } finally {
    await pool5.stop();
  }

  let floor64: number | undefined;
  const pool128 = await startServer({ COURIER_POOL_SIZE: '128' });
  try {
    for (const connections of [64, 256]) {
      const floor = await measured(`${pool128.url}/bench/floor`, connections, seconds, warmUp);
      const run = await measured(`${pool128.url}/order`, connections, seconds, warmUp);
      const share = run.ordersPerSecond / floor.ordersPerSecond;
      const bound = connections === 64;
      rows.push(
        row({
          section: 'http',
          scenario: `framework floor, ${connections} connections`,
          value: floor.ordersPerSecond,
          unit: 'req/s',
          figure: `${Math.round(floor.ordersPerSecond).toLocaleString('en-US')} req/s`,
          compare: details(floor),
        }),
        row({
          section: 'http',
          scenario: `pool 128, delays 1 ms, ${connections} connections`,
          value: run.ordersPerSecond,
          unit: 'orders/s',
          figure: `${orders(run)} (${Math.round(share * 100)}% of floor)`,
          baseline: `floor ${Math.round(floor.ordersPerSecond).toLocaleString('en-US')} req/s`,
          compare: details(run),
          target: bound ? '≥ 80% of floor, p99 ≤ 5 ms' : '',
          met: bound ? share >= 0.8 && run.p99 <= 5 && run.non2xx + run.errors === 0 : undefined,
        }),
      );
    }
    floor64 = rows.find((r) => r.scenario === 'framework floor, 64 connections')?.value;
  } finally {
    await pool128.stop();
  }

  // The same order load with metrics and the dashboard off: what observing every order costs.
  const bare = await startServer({
    COURIER_POOL_SIZE: '128',
    METRICS_ENABLED: 'false',
    DASHBOARD_ENABLED: 'false',
  });
  try {
    const run = await measured(`${bare.url}/order`, 64, seconds, warmUp);
    rows.push(
      row({
        section: 'http',
        scenario: 'pool 128, delays 1 ms, 64 connections, metrics and dashboard off',
        value: run.ordersPerSecond,
        unit: 'orders/s',
        figure: orders(run),
        baseline:
          floor64 === undefined ? '' : `floor ${Math.round(floor64).toLocaleString('en-US')} req/s`,
        compare: details(run),
      }),
    );
  } finally {
    await bare.stop();
  }

  // The default, durable store (PGlite, ORDER_STORE unset) in a fresh data directory: what
  // recording every order durably costs next to the in-memory rows.
  const memory64 = rows.find((r) => r.scenario === 'pool 128, delays 1 ms, 64 connections');
  const dataDir = mkdtempSync(join(tmpdir(), 'order-pipeline-bench-pglite-'));
  try {
    const durable = await startServer({
      COURIER_POOL_SIZE: '128',
      ORDER_STORE: undefined,
      DATA_DIR: dataDir,
    });
    try {
      const run = await measured(`${durable.url}/order`, 64, seconds, warmUp);
      rows.push(
        row({
          section: 'http',
          scenario: 'pool 128, delays 1 ms, 64 connections, default durable store (PGlite)',
          value: run.ordersPerSecond,
          unit: 'orders/s',
          figure:
            memory64 === undefined
              ? orders(run)
              : `${orders(run)} (${Math.round((run.ordersPerSecond / memory64.value) * 100)}% of in-memory)`,
          baseline:
            memory64 === undefined
              ? ''
              : `in-memory store ${Math.round(memory64.value).toLocaleString('en-US')} orders/s`,
          compare: details(run),
        }),
      );
    } finally {
      await durable.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  return rows;
}
