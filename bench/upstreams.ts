import { spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { measured, pinnedOff, type Load, type LoadShape } from './http-load.js';
import { percentile, row, type Row } from './report.js';
import { pinnedCommand, post, startServer, type BenchServer } from './server-process.js';

/**
 * The real-upstreams benchmarks: the server in its default configuration (pool 128) with
 * PIPELINE_FILE=examples/pipeline.json against the reference upstreams on loopback, answering
 * in 1 ms, beside the same server with the simulated steps at 1 ms, in the same run.
 *
 * - CPU per order: the server's user + system time (/proc) over the orders it answered
 *   during the measured load, for both, as fast as each answers and then at one rate both
 *   serve (1,000 orders/s, 500 quick); target: three upstream calls cost at most twice the
 *   simulated order. Baseline: undici alone (bench/bare-undici-client.ts) sending the same
 *   three calls at the same rate, pinned to the server's core.
 * - Abort to socket closed: orders declined by the payment upstream while the vendor's and
 *   the courier's requests are in flight. The three upstreams run in one process, so one
 *   clock times both ends: from the payment's 402 written to each in-flight request's socket
 *   closed, as the upstreams saw them, one order at a time and four at a time. Target: p99
 *   ≤ 2 ms. Baseline: a bare node:http client on the server's core that destroys its vendor
 *   request when the payment's answer ends, the same path without the service, as many at a
 *   time.
 *
 * The upstreams' process runs off the server's core, beside the load generator.
 */

const upstreamsEntry = fileURLToPath(
  new URL('../upstreams/reference-upstreams.js', import.meta.url),
);
export const pipelineFile = fileURLToPath(new URL('../../examples/pipeline.json', import.meta.url));

type UpstreamName = 'payment' | 'vendor' | 'courier';
const upstreamNames: readonly UpstreamName[] = ['payment', 'vendor', 'courier'];

/** A request as an upstream's ledger shows it (the fields read here). */
interface SeenRequest {
  readonly key: string;
  readonly action: 'apply' | 'undo';
  readonly status: number | 'aborted';
  readonly socketClosedEarly: boolean;
  readonly answeredAt?: number;
  readonly closedAt?: number;
}

/** What an upstream applied, as its ledger shows it; the payment's sums too. */
export interface AppliedEffects {
  readonly effects: readonly { readonly key: string; readonly amount: number }[];
  readonly charged?: number;
  readonly refunded?: number;
}

export interface UpstreamsProcess {
  readonly urls: Readonly<Record<UpstreamName, string>>;
  control(name: UpstreamName, behaviour: Record<string, number>): Promise<void>;
  requests(name: UpstreamName): Promise<SeenRequest[]>;
  effects(name: UpstreamName): Promise<AppliedEffects>;
  stop(): Promise<void>;
}

/** startUpstreams spawns the reference upstreams on free ports, answering in `latencyMs`. */
export async function startUpstreams(latencyMs: number): Promise<UpstreamsProcess> {
  const [file, args] = pinnedOff(['node', upstreamsEntry]);
  const child = spawn(file, args, {
    env: {
      ...process.env,
      PAYMENT_PORT: '0',
      VENDOR_PORT: '0',
      COURIER_PORT: '0',
      UPSTREAMS_LATENCY_MS: String(latencyMs),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );
  const urls = await new Promise<Record<UpstreamName, string>>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const line = /\{"msg":"reference upstreams listening".*\}/.exec(output);
      if (line !== null) resolve(JSON.parse(line[0]) as Record<UpstreamName, string>);
    });
    child.once('exit', (code) => {
      reject(new Error(`reference upstreams exited with ${code}`));
    });
  });
  return {
    urls,
    control: async (name, behaviour) => {
      await send(`${urls[name]}/control`, 'POST', JSON.stringify(behaviour));
    },
    requests: async (name) => {
      const ledger = JSON.parse(await send(`${urls[name]}/ledger`, 'GET')) as {
        requests: SeenRequest[];
      };
      return ledger.requests;
    },
    effects: async (name) =>
      JSON.parse(await send(`${urls[name]}/ledger`, 'GET')) as AppliedEffects,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function send(url: string, method: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method, headers: { 'content-type': 'application/json' } },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          resolve(text);
        });
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** CpuLoad is a measured load and the server's CPU time per order answered 2xx during it. */
interface CpuLoad {
  readonly load: Load;
  readonly cpuMsPerOrder: number;
}

/** cpuMeasured runs `measured` against `server` and reads its CPU time around the measured part. */
async function cpuMeasured(
  server: BenchServer,
  seconds: number,
  warmUp: number,
  shape: LoadShape,
): Promise<CpuLoad> {
  let cpuBefore = Number.NaN;
  const load = await measured(`${server.url}/order`, 64, seconds, warmUp, shape, () => {
    cpuBefore = server.cpuSeconds();
  });
  const cpuSeconds = server.cpuSeconds() - cpuBefore;
  const served = load.requests - load.non2xx - load.errors;
  return { load, cpuMsPerOrder: (cpuSeconds * 1000) / served };
}

/** inTurn runs `work(i)` for i from 0 to `count` − 1, `concurrency` at a time. */
async function inTurn(
  count: number,
  concurrency: number,
  work: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/**
 * serviceAborts sends `orders` orders declined by the payment upstream (amounts ending in 13),
 * `concurrency` at a time, and counts their answers by status.
 */
async function serviceAborts(
  server: BenchServer,
  orders: number,
  concurrency: number,
): Promise<Map<number, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses = new Map<number, number>();
  await inTurn(orders, concurrency, async () => {
    const { status } = await post(`${server.url}/order`, { amount: 113 }, agent);
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  });
  agent.destroy();
  return statuses;
}

/**
 * bareAborts is the baseline: the same abort without the service, by bench/bare-abort-client.ts
 * in a process of its own pinned to the server's core (see there), `orders` orders,
 * `concurrency` at a time.
 */
async function bareAborts(
  upstreams: UpstreamsProcess,
  orders: number,
  concurrency: number,
): Promise<void> {
  await runOnServerCore('bare-abort-client.js', [
    upstreams.urls.payment,
    upstreams.urls.vendor,
    String(orders),
    String(concurrency),
  ]);
}

/**
 * closedAfterDecline reads the upstreams' ledgers from `from` on (each upstream's count of
 * requests before the runs measured). For the other requests of the declined runs, it returns
 * `latencies`, sorted: for each closed unanswered, the milliseconds from the payment's 402 to
 * its socket closed (one clock: the upstreams' process); and `answered`, how many were
 * answered instead.
 */
async function closedAfterDecline(
  upstreams: UpstreamsProcess,
  from: readonly number[],
): Promise<{ latencies: number[]; answered: number }> {
  const [payments, ...others] = await Promise.all(
    upstreamNames.map(async (name, i) => (await upstreams.requests(name)).slice(from[i] ?? 0)),
  );
  const declinedAt = new Map<string, number>();
  for (const request of payments ?? []) {
    if (request.action !== 'apply' || request.status !== 402) continue;
    if (request.answeredAt === undefined) continue;
    declinedAt.set(runOf(request.key), request.answeredAt);
  }
  const latencies: number[] = [];
  let answered = 0;
  for (const requests of others) {
    for (const request of requests) {
      const declined = declinedAt.get(runOf(request.key));
      if (request.action !== 'apply' || declined === undefined) continue;
      if (request.closedAt === undefined) answered++;
      else latencies.push(request.closedAt - declined);
    }
  }
  return { latencies: latencies.sort((a, b) => a - b), answered };
}

/** seenSoFar is how many requests each upstream has seen, for {@link closedAfterDecline}. */
async function seenSoFar(upstreams: UpstreamsProcess): Promise<number[]> {
  return Promise.all(upstreamNames.map(async (name) => (await upstreams.requests(name)).length));
}

/**
 * bareUndici runs bench/bare-undici-client.ts pinned to the server's core: undici alone
 * sending an order's three requests `rate` times a second; answers its CPU time per order.
 */
async function bareUndici(
  upstreams: UpstreamsProcess,
  rate: number,
  seconds: number,
  warmUp: number,
): Promise<{ cpuMsPerOrder: number; orders: number; failed: number }> {
  const output = await runOnServerCore('bare-undici-client.js', [
    upstreams.urls.payment,
    upstreams.urls.vendor,
    upstreams.urls.courier,
    String(Math.round(rate)),
    String(seconds),
    String(warmUp),
  ]);
  return JSON.parse(output) as { cpuMsPerOrder: number; orders: number; failed: number };
}

/**
 * runOnServerCore runs the bench script `script` (compiled beside this file) with `args` in a
 * process of its own pinned to the server's core, and resolves with what it printed once it
 * exits; rejects if it exits with another code than 0.
 */
async function runOnServerCore(script: string, args: readonly string[]): Promise<string> {
  const entry = fileURLToPath(new URL(`./${script}`, import.meta.url));
  const command = pinnedCommand(['node', entry, ...args]);
  const child = spawn(command[0] ?? 'node', command.slice(1), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`${script} exited with ${code}`);
  return output;
}

/** runOf is the run id of a step's key, `<run id>:<step>`. */
const runOf = (key: string): string => key.slice(0, key.lastIndexOf(':'));

const count = (value: number): string => Math.round(value).toLocaleString('en-US');
const ms = (value: number): string => `${value.toFixed(2)} ms`;

function clean(load: Load): string {
  const bad = load.non2xx + load.errors;
  return `p50 ${load.p50} ms · p99 ${load.p99} ms · non-2xx/errors ${bad}${bad > 0 ? ` (${load.statuses})` : ''}`;
}

export async function upstreamsBenchmarks(options: { quick: boolean }): Promise<Row[]> {
  const seconds = options.quick ? 2 : 10;
  const warmUp = options.quick ? 1 : 2;
  const pool128 = { COURIER_POOL_SIZE: '128' };

  // Saturated, then at one rate both serve: at saturation the simulated server spreads its
  // per-batch costs (group commits, writes) over more orders than the one with upstreams.
  const ratePerSecond = options.quick ? 500 : 1000;
  const both = async (server: BenchServer, fields?: Record<string, unknown>) => ({
    saturated: await cpuMeasured(server, seconds, warmUp, fields === undefined ? {} : { fields }),
    rated: await cpuMeasured(server, seconds, 1, {
      ...(fields === undefined ? {} : { fields }),
      ratePerSecond,
    }),
  });
  const simulatedServer = await startServer(pool128);
  let simulated: { saturated: CpuLoad; rated: CpuLoad };
  try {
    simulated = await both(simulatedServer);
  } finally {
    await simulatedServer.stop();
  }

  const upstreams = await startUpstreams(1);
  const rows: Row[] = [];
  try {
    const server = await startServer({
      ...pool128,
      PIPELINE_FILE: pipelineFile,
      PAYMENT_URL: upstreams.urls.payment,
      VENDOR_URL: upstreams.urls.vendor,
      COURIER_URL: upstreams.urls.courier,
    });
    try {
      const real = await both(server, { amount: 1250 });
      rows.push(
        row({
          section: 'upstreams',
          scenario: 'real upstreams (3 calls at 1 ms, loopback), 64 connections, pool 128',
          value: real.saturated.load.ordersPerSecond,
          unit: 'orders/s',
          figure: `${count(real.saturated.load.ordersPerSecond)} orders/s`,
          baseline: `simulated steps at 1 ms ${count(simulated.saturated.load.ordersPerSecond)} orders/s`,
          compare: clean(real.saturated.load),
        }),
      );
      const undiciAlone = {
        saturated: await bareUndici(
          upstreams,
          real.saturated.load.ordersPerSecond,
          seconds,
          warmUp,
        ),
        rated: await bareUndici(upstreams, ratePerSecond, seconds, 1),
      };
      for (const [label, key] of [
        ['as fast as answered', 'saturated'],
        [`at ${count(ratePerSecond)} orders/s`, 'rated'],
      ] as const) {
        const ofReal = real[key];
        const ofSimulated = simulated[key];
        const alone = undiciAlone[key];
        const ratio = ofReal.cpuMsPerOrder / ofSimulated.cpuMsPerOrder;
        rows.push(
          row({
            section: 'upstreams',
            scenario: `server CPU per order, real upstreams vs simulated steps, ${label}`,
            value: ofReal.cpuMsPerOrder,
            unit: 'ms',
            figure: `${ofReal.cpuMsPerOrder.toFixed(3)} ms CPU/order (${ratio.toFixed(2)}× simulated)`,
            baseline: `simulated ${ofSimulated.cpuMsPerOrder.toFixed(3)} ms CPU/order; undici alone, the same three calls at the same rate, ${alone.cpuMsPerOrder.toFixed(3)} ms (${alone.failed} of ${count(alone.orders)} orders' calls failed)`,
            compare: `real: ${clean(ofReal.load)}; simulated: ${clean(ofSimulated.load)}`,
            target: '≤ 2× simulated',
            met:
              ratio <= 2 &&
              ofReal.load.non2xx + ofReal.load.errors === 0 &&
              ofSimulated.load.non2xx + ofSimulated.load.errors === 0,
          }),
        );
      }

      // The decline comes after 1 ms; the vendor's and courier's answers would take 200 ms.
      // One order at a time measures the abort's own path; four at a time, the same path with
      // the upstreams' process busy with the other orders' requests.
      await upstreams.control('payment', { latency_ms: 1 });
      await upstreams.control('vendor', { latency_ms: 200 });
      await upstreams.control('courier', { latency_ms: 200 });
      const orders = options.quick ? 40 : 400;
      const figures = (sorted: readonly number[]): string =>
        `p50 ${ms(percentile(sorted, 50))} · p99 ${ms(percentile(sorted, 99))}`;
      for (const concurrency of [1, 4]) {
        const serviceFrom = await seenSoFar(upstreams);
        const statuses = await serviceAborts(server, orders, concurrency);
        const { latencies, answered: notClosed } = await closedAfterDecline(upstreams, serviceFrom);
        const bareFrom = await seenSoFar(upstreams);
        await bareAborts(upstreams, orders, concurrency);
        const { latencies: bare } = await closedAfterDecline(upstreams, bareFrom);
        const p99 = percentile(latencies, 99);
        const answered = [...statuses].map(([status, n]) => `${status}×${n}`).join(' ');
        rows.push(
          row({
            section: 'upstreams',
            scenario: `sibling declined, requests in flight: payment's 402 to their sockets closed, as the upstreams see it (${orders} orders, ${concurrency} at a time)`,
            value: p99,
            unit: 'ms',
            figure: `${figures(latencies)} · max ${ms(latencies.at(-1) ?? Number.NaN)}`,
            baseline: `bare client destroying its request on the 402: ${figures(bare)}`,
            compare: `vendor and courier at 200 ms: ${latencies.length} requests closed, ${notClosed} answered; orders answered ${answered}`,
            target: 'p99 ≤ 2 ms, none answered',
            met: p99 <= 2 && notClosed === 0,
          }),
        );
      }
    } finally {
      await server.stop();
    }
  } finally {
    await upstreams.stop();
  }
  return rows;
}
