import http from 'node:http';
import { percentile, row, type Row } from './report.js';
import { post, startServer, type Timed } from './server-process.js';

/**
 * Cancel latency and timeout accuracy: how long after the failure or the deadline the
 * client has its answer. The excess is the response time minus the failure time (50 ms)
 * or the deadline; reported as p50/p99, one request at a time and under 50 concurrent.
 */

const concurrency = 50;

async function sequential(url: string, body: object, count: number): Promise<Timed[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const results: Timed[] = [];
  try {
    for (let i = 0; i < count; i++) results.push(await post(url, body, agent));
  } finally {
    agent.destroy();
  }
  return results;
}

/** concurrent keeps `inFlight` requests in flight until `count` have been answered. */
async function concurrent(
  url: string,
  body: object,
  count: number,
  inFlight = concurrency,
): Promise<Timed[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });
  const results: Timed[] = [];
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      results.push(await post(url, body, agent));
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
 * measured runs `measure` after a warm-up of untimed requests of the same kind against the
 * same server, 100 at a time: a service in production is warm, and the first few hundred
 * orders of a fresh process run while its code is still being compiled.
 */
async function measured(
  url: string,
  body: object,
  warmUp: number,
  measure: () => Promise<Timed[]>,
): Promise<Timed[]> {
  await concurrent(url, body, warmUp, 100);
  return measure();
}

function excessRow(
  scenario: string,
  results: Timed[],
  expectedStatus: number,
  atMs: number,
  limitP99: number,
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
    baseline: `answer at ${atMs} ms`,
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
    rows.push(
      excessRow(
        'cancel latency, sequential',
        await measured(url, cancelBody, warmUp, () => sequential(url, cancelBody, count)),
        400,
        failAt,
        1,
      ),
      excessRow(
        'cancel latency, 50 concurrent',
        await measured(url, cancelBody, warmUp, () => concurrent(url, cancelBody, count)),
        400,
        failAt,
        1,
      ),
      excessRow(
        `timeout accuracy, sequential, deadline ${shortDeadline} ms`,
        await measured(url, slowBody, warmUp, () => sequential(url, slowBody, count)),
        504,
        shortDeadline,
        1.5,
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
        await measured(url, slowBody, warmUp, () => concurrent(url, slowBody, count)),
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
