import { monitorEventLoopDelay } from 'node:perf_hooks';
import { connect, LoadConnection, type Answer } from './load-connection.js';
import { percentile, row, type Row } from './report.js';
import { startServer } from './server-process.js';

/**
 * Late answers: 200 keep-alive clients send orders as fast as they are answered (closed
 * loop, a fresh `order_id` each, every step at 1 ms) to the default configuration with a
 * 500 ms deadline (`REQUEST_TIMEOUT_MS=500`) and pool 128. The promise measured is that no
 * answer comes later than the deadline + 50 ms: the deadline cuts an order's steps off, so an
 * answer later than that waited for something else (a stalled event loop, a slow write to the
 * store, a collection).
 *
 * The connections stay open for the whole run; its first 2 s, while they open on a fresh
 * server and its code compiles, are reported apart, beside the same window for the framework
 * floor of another fresh server: on a saturated server a new connection's first request
 * waits for the ones already open, whatever the route.
 */

const deadlineMs = 500;
const lateAfterMs = deadlineMs + 50;
const connections = 200;
const openingSeconds = 2;
const orderFields = { amount: 1250, delay_ms: { payment: 1, vendor: 1, courier: 1 } };

interface Window {
  readonly answers: Answer[];
  /** The load generator's own largest event-loop delay in the window, ms. */
  clientMaxDelayMs: number;
}

/**
 * closedLoop keeps `connections` connections busy sending to `path` of `port` for the opening
 * window and then `seconds` more, and returns each window's answers.
 */
async function closedLoop(
  port: number,
  path: string,
  seconds: number,
): Promise<{ opening: Window; steady: Window; unanswered: number }> {
  let sequence = 0;
  const request = (): string => {
    const body = JSON.stringify({ order_id: `late-${process.pid}-${sequence++}`, ...orderFields });
    return (
      `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
      `content-length: ${body.length}\r\n\r\n${body}`
    );
  };
  const opening: Window = { answers: [], clientMaxDelayMs: 0 };
  const steady: Window = { answers: [], clientMaxDelayMs: 0 };
  let current = opening;
  let stopped = false;
  const onAnswer = (answer: Answer, connection: LoadConnection): void => {
    current.answers.push(answer);
    if (!stopped) connection.send(request());
  };
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const sockets = await Promise.all(Array.from({ length: connections }, () => connect(port)));
  const pool = sockets.map((socket) => new LoadConnection(socket, onAnswer));
  for (const connection of pool) connection.send(request());
  await new Promise((resolve) => setTimeout(resolve, openingSeconds * 1000));
  opening.clientMaxDelayMs = delay.max / 1e6;
  delay.reset();
  current = steady;
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  stopped = true;
  steady.clientMaxDelayMs = delay.max / 1e6;
  delay.disable();
  // The requests in flight are answered within the deadline, or they count as unanswered.
  const drainUntil = performance.now() + 2000;
  while (pool.some((c) => c.busy && !c.closed) && performance.now() < drainUntil) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const unanswered = pool.filter((c) => c.busy).length;
  for (const connection of pool) connection.destroy();
  return { opening, steady, unanswered };
}

interface Summary {
  count: number;
  p99: number;
  max: number;
  late: number;
  notOk: string;
}

function summarize(window: Window): Summary {
  const ms = window.answers.map((answer) => answer.ms).sort((a, b) => a - b);
  const statuses = new Map<number, number>();
  for (const answer of window.answers) {
    if (answer.status !== 200) statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
  }
  return {
    count: ms.length,
    p99: percentile(ms, 99),
    max: ms.at(-1) ?? Number.NaN,
    late: ms.filter((value) => value > lateAfterMs).length,
    notOk: [...statuses].map(([status, count]) => `${status}×${count}`).join(' ') || 'none',
  };
}

const n = (value: number): string => value.toLocaleString('en-US');
const fixed = (value: number): string => value.toFixed(1);

export async function lateAnswersBenchmark(options: { quick: boolean }): Promise<Row[]> {
  const seconds = options.quick ? 4 : 60;
  const env = { COURIER_POOL_SIZE: '128', REQUEST_TIMEOUT_MS: String(deadlineMs) };
  const server = await startServer(env);
  let run: Awaited<ReturnType<typeof closedLoop>>;
  try {
    run = await closedLoop(server.port, '/order', seconds);
  } finally {
    await server.stop();
  }
  const floorServer = await startServer(env);
  let floor: Awaited<ReturnType<typeof closedLoop>>;
  try {
    floor = await closedLoop(floorServer.port, '/bench/floor', 0);
  } finally {
    await floorServer.stop();
  }
  const steady = summarize(run.steady);
  const opening = summarize(run.opening);
  const floorOpening = summarize(floor.opening);
  const scenario = `${connections} clients, deadline ${deadlineMs} ms, pool 128, steps at 1 ms, default configuration`;
  return [
    row({
      section: 'late',
      scenario: `${scenario}, ${seconds} s after the first ${openingSeconds}`,
      value: steady.max,
      unit: 'ms',
      figure: `max ${fixed(steady.max)} ms · ${n(steady.late)} of ${n(steady.count)} later than ${lateAfterMs} ms`,
      baseline: `deadline ${deadlineMs} ms`,
      compare:
        `p99 ${fixed(steady.p99)} ms · ${n(Math.round(steady.count / seconds))} orders/s · ` +
        `not 200: ${steady.notOk} · unanswered ${run.unanswered} · ` +
        `load generator's loop delay max ${fixed(run.steady.clientMaxDelayMs)} ms`,
      target: `no answer later than ${lateAfterMs} ms`,
      met: steady.late === 0 && run.unanswered === 0,
    }),
    row({
      section: 'late',
      scenario: `the same, its first ${openingSeconds} s on a fresh server while the connections open`,
      value: opening.max,
      unit: 'ms',
      figure: `max ${fixed(opening.max)} ms · ${n(opening.late)} of ${n(opening.count)} later than ${lateAfterMs} ms`,
      baseline: `framework floor, same window: p99 ${fixed(floorOpening.p99)} ms · max ${fixed(floorOpening.max)} ms · ${n(floorOpening.late)} of ${n(floorOpening.count)} later`,
      compare: `p99 ${fixed(opening.p99)} ms · not 200: ${opening.notOk}`,
    }),
  ];
}
