import http from 'node:http';
import { percentile, row, type Row } from './report.js';
import { post, startServer, type Timed } from './server-process.js';

/**
 * Cancel latency and timeout accuracy: how long after the failure or the deadline the
 * client has its answer. The excess is the response time minus the failure time (50 ms)
 * or the deadline; reported as p50/p99, one request at a time and under 50 concurrent.
 */

const concurrency = 50;

/**
 * sequential sends `count` requests one at a time, after `warmUp` untimed requests of the
 * same kind, 100 at a time: a service in production is warm, and the first few hundred
 * orders of a fresh process run while its code is still being compiled.
 */
async function sequential(
  url: string,
  body: object,
  warmUp: number,
  count: number,
): Promise<Timed[]> {
  await concurrent(url, body, 0, warmUp, 100);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const results: Timed[] = [];
  try {
    for (let i = 0; i < count; i++) results.push(await post(url, body, agent));
  } finally {
    agent.destroy();
  }
  return results;
}

/**
 * concurrent keeps `inFlight` requests in flight until `warmUp + count` have been answered,
 * and returns the last `count`. The untimed lead warms the server up and lets the requests,
 * which all start at once, spread out in time as they would in a steady flow.
 */
async function concurrent(
  url: string,
  body: object,
  warmUp: number,
  count: number,
  inFlight = concurrency,
): Promise<Timed[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });
  const results: Timed[] = [];
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < warmUp + count) {
      const index = started++;
      const answer = await post(url, body, agent);
      if (index >= warmUp) results.push(answer);
    }
  };
  try {
    await Promise.all(Array.from({ length: inFlight }, worker));
  } finally {
    agent.destroy();
  }
  return results;
}

/**
 * idleFloor times the framework floor route one request at a time, each after `pauseMs` of
 * idle, as an order's answer comes after its 50 ms (or its deadline) of waiting: what the
 * machine and the framework alone add to an answer that follows an idle pause. The pause
 * paces the requests; nothing is synchronized by it.
 */
async function idleFloor(
  url: string,
  warmUp: number,
  count: number,
  pauseMs: number,
): Promise<Timed[]> {
  await concurrent(url, {}, 0, warmUp, 100);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const results: Timed[] = [];
  try {
    for (let i = 0; i < count; i++) {
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      results.push(await post(url, {}, agent));
    }
  } finally {
    agent.destroy();
  }
  return results;
}

/** idleFloorSummary is the baseline text of the sequential rows. */
function idleFloorSummary(floor: Timed[]): string {
  const times = floor.map((r) => r.ms).sort((a, b) => a - b);
  return `floor after idle p50 ${percentile(times, 50).toFixed(2)} · p99 ${percentile(times, 99).toFixed(2)} ms`;
}

function excessRow(
  scenario: string,
  results: Timed[],
  expectedStatus: number,
  atMs: number,
  limitP99: number,
  baseline = `answer at ${atMs} ms`,
): Row {
  const excess = results.map((r) => r.ms - atMs).sort((a, b) => a - b);
  const wrong = results.filter((r) => r.status !== expectedStatus).length;
  const p50 = percentile(excess, 50);
  const p99 = percentile(excess, 99);
  return row({
    section: 'latency',
    scenario: `${scenario} (n=${results.length})`,
    value: p99,
    unit: 'ms',
    figure: `p50 ${p50.toFixed(2)} ms · p99 ${p99.toFixed(2)} ms`,
    baseline,
    compare: `max ${(excess.at(-1) ?? Number.NaN).toFixed(2)} ms · wrong status ${wrong}`,
    target: `p99 ≤ ${limitP99} ms`,
    met: p99 <= limitP99 && wrong === 0,
  });
}

export async function latencyBenchmarks(options: { quick: boolean }): Promise<Row[]> {
  const count = options.quick ? 50 : 200;
  const warmUp = options.quick ? 100 : 300;
  const rows: Row[] = [];
  const failAt = 50;
  const cancelBody = {
    order_id: 'cancel',
    amount: 100,
    fail_step: 'payment',
    delay_ms: { payment: failAt, vendor: 800, courier: 800 },
  };
  const slowBody = {
    order_id: 'slow',
    amount: 100,
    delay_ms: { payment: 3000, vendor: 3000, courier: 3000 },
  };

  // The Go run used a 2 s deadline. 200 sequential orders at 2 s would take 400 s of the
  // suite's 10 minutes, so the sequential set runs against a 100 ms deadline; the
  // concurrent set keeps 2 s.
  const shortDeadline = 100;
  const longDeadline = options.quick ? 300 : 2000;
  const fast = await startServer({
    COURIER_POOL_SIZE: '128',
    REQUEST_TIMEOUT_MS: String(shortDeadline),
  });
  try {
    const url = `${fast.url}/order`;
    const floor = await idleFloor(`${fast.url}/bench/floor`, warmUp, count, failAt);
    const floorTimes = floor.map((r) => r.ms).sort((a, b) => a - b);
    const floorBaseline = idleFloorSummary(floor);
    rows.push(
      row({
        section: 'latency',
        scenario: `framework floor, sequential, each after ${failAt} ms idle (n=${floor.length})`,
        value: percentile(floorTimes, 99),
        unit: 'ms',
        figure: `p50 ${percentile(floorTimes, 50).toFixed(2)} ms · p99 ${percentile(floorTimes, 99).toFixed(2)} ms`,
        compare: `max ${(floorTimes.at(-1) ?? Number.NaN).toFixed(2)} ms (response time, not excess)`,
      }),
      excessRow(
        'cancel latency, sequential',
        await sequential(url, cancelBody, warmUp, count),
        400,
        failAt,
        1,
        floorBaseline,
      ),
      excessRow(
        'cancel latency, 50 concurrent',
        await concurrent(url, cancelBody, warmUp, count),
        400,
        failAt,
        1,
      ),
      excessRow(
        `timeout accuracy, sequential, deadline ${shortDeadline} ms`,
        await sequential(url, slowBody, warmUp, count),
        504,
        shortDeadline,
        1.5,
        floorBaseline,
      ),
    );
  } finally {
    await fast.stop();
  }
  const slow = await startServer({
    COURIER_POOL_SIZE: '128',
    REQUEST_TIMEOUT_MS: String(longDeadline),
  });
  try {
    const url = `${slow.url}/order`;
    rows.push(
      excessRow(
        `timeout accuracy, 50 concurrent, deadline ${longDeadline} ms`,
        await concurrent(url, slowBody, warmUp, count),
        504,
        longDeadline,
        1.5,
      ),
    );
  } finally {
    await slow.stop();
  }
  return rows;
}
